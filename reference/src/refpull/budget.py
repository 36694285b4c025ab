"""How long a pull may take: cancellation, an overall deadline and a minimum rate.

containerd binds every request of a pull to the CRI call's context: when kubelet's
deadline expires or the call is cancelled, the pull stops (Go ``context``), and the
error ends in ``context canceled`` or ``context deadline exceeded`` (ERR-001 maps those
to CANCELLED and DEADLINE_EXCEEDED). The reference does the same with a
:class:`PullBudget` handed to the transport (``TransportSettings.budget``): every socket
read and write of the pull checks it, and waits in short slices so a cancellation is
seen within :data:`POLL_S`.

Deviation: containerd has no limit of its own (behaviors.md XPORT-002): a registry that
trickles one byte per second holds a pull forever when nobody cancels it. The reference
also stops a pull after :attr:`TransferLimits.pull_timeout` seconds, and a transfer that
receives less than :attr:`TransferLimits.min_rate` bytes per second over
:attr:`TransferLimits.min_rate_window` seconds of waiting (curl's ``--speed-limit`` /
``--speed-time``). Only time spent waiting for the network counts, so a slow consumer
(unpack) never trips the rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from refpull.errors import TransportError

__all__ = [
    "POLL_S",
    "Cancel",
    "PullBudget",
    "PullCanceled",
    "PullDeadlineExceeded",
    "RateMeter",
    "TransferLimits",
    "TransferTooSlow",
]

#: Longest a socket wait runs before the budget is checked again.
POLL_S = 0.25


class PullCanceled(TransportError):
    """The caller cancelled the pull (its RPC ended, or the server is stopping)."""


class PullDeadlineExceeded(TransportError):
    """The pull ran past its deadline (the caller's, or ``--pull-timeout``)."""


class TransferTooSlow(TransportError):
    """A transfer stayed below the minimum rate for a whole window."""


@dataclass(frozen=True, kw_only=True)
class TransferLimits:
    """Limits every pull gets (``refpull pull`` / ``refpull serve`` flags).

    Attributes:
        pull_timeout: seconds a whole pull may take (``--pull-timeout``); None = none.
        min_rate: bytes per second a transfer must reach (``--min-rate``); 0 = no rule.
        min_rate_window: seconds of waiting over which the rate is measured
            (``--min-rate-window``); also the longest silence tolerated.
    """

    pull_timeout: float | None = 1800.0
    min_rate: int = 1024
    min_rate_window: float = 60.0


class Cancel:
    """A cancellation signal that runs callbacks once (a Go ``context.CancelFunc``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[str], None]] = []
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self.reason is not None

    def cancel(self, reason: str = "context canceled") -> None:
        """Cancel (idempotent) and run the callbacks with *reason*."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(reason)

    def on_cancel(self, callback: Callable[[str], None]) -> None:
        """Run *callback(reason)* when cancelled (at once if already cancelled)."""
        with self._lock:
            if self.reason is None:
                self._callbacks.append(callback)
                return
            reason = self.reason
        callback(reason)


class PullBudget:
    """The limits of one pull, checked by its transport on every socket wait."""

    def __init__(
        self,
        limits: TransferLimits | None = None,
        cancels: Sequence[Cancel] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Start the pull's clock now.

        Args:
            limits: the limits (defaults of :class:`TransferLimits` when None).
            cancels: signals any of which stops the pull.
            clock: a monotonic clock (tests pass a fake one).
        """
        self.limits = limits or TransferLimits()
        self._cancels = tuple(cancels)
        self._clock = clock
        timeout = self.limits.pull_timeout
        self.deadline = None if timeout is None else clock() + timeout

    def check(self) -> None:
        """Raise when the pull must stop.

        Raises:
            PullCanceled: a cancel signal fired (``… context canceled``).
            PullDeadlineExceeded: the deadline passed.
        """
        for cancel in self._cancels:
            reason = cancel.reason
            if reason is None:
                continue
            if reason.endswith("context deadline exceeded"):
                raise PullDeadlineExceeded(reason)
            raise PullCanceled(reason)
        if self.deadline is not None and self._clock() >= self.deadline:
            raise PullDeadlineExceeded(
                f"pull took longer than {self.limits.pull_timeout:g} s "
                "(--pull-timeout): context deadline exceeded"
            )

    def slice(self, timeout: float | None) -> float:
        """How long the next socket wait may last, at most *timeout* seconds."""
        wait = POLL_S if timeout is None else min(POLL_S, timeout)
        if self.deadline is not None:
            wait = min(wait, max(self.deadline - self._clock(), 0.0))
        return max(wait, 0.001)

    def remaining(self, timeout: float | None) -> float | None:
        """*timeout* capped by the time left before the deadline."""
        if self.deadline is None:
            return timeout
        left = max(self.deadline - self._clock(), 0.001)
        return left if timeout is None else min(timeout, left)

    def meter(self) -> RateMeter:
        """A fresh minimum-rate meter for one connection."""
        return RateMeter(self.limits.min_rate, self.limits.min_rate_window)


class RateMeter:
    """The minimum-rate rule on one connection: bytes per second of waiting.

    :meth:`restart` at every new request (the time between requests is not a
    transfer); :meth:`waited` after every socket wait.
    """

    def __init__(self, min_rate: int, window: float) -> None:
        """Measure over *window* seconds; *min_rate* 0 disables the rule."""
        self.min_rate = min_rate
        self.window = window
        self.restart()

    def restart(self) -> None:
        """Begin a new window (a request was just sent)."""
        self._waited = 0.0
        self._bytes = 0

    def waited(self, seconds: float, received: int) -> None:
        """Count a wait of *seconds* that brought *received* bytes.

        Raises:
            TransferTooSlow: a whole window brought fewer than ``min_rate * window``.
        """
        if self.min_rate <= 0:
            return
        self._waited += seconds
        self._bytes += received
        if self._waited < self.window:
            return
        if self._bytes < self.min_rate * self.window:
            raise TransferTooSlow(
                f"transfer slower than {self.min_rate} B/s for {self.window:g} s "
                f"({self._bytes} bytes; --min-rate, --min-rate-window)"
            )
        self.restart()
