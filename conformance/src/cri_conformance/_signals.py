"""SIGTERM ends a test run the way Ctrl-C does, so its teardown still runs.

A CI timeout sends SIGTERM; Python's default for it is to die on the spot, which
leaves a managed runtime running (it is in its own session) and the simulator's temp
directories, one holding a client private key, behind. Raised as KeyboardInterrupt
in the main thread, it makes pytest stop the run and tear every fixture down:
targets stop their runtime and remove their directories, the world closes every
registry and removes its CA directory.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["interrupt_on_sigterm"]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}: stopping the run")


def interrupt_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into KeyboardInterrupt; returns the function that undoes it.

    Nothing changes when called off the main thread, or when someone else already
    handles SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        return lambda: None
    signal.signal(signal.SIGTERM, _interrupt)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is _interrupt:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return restore
