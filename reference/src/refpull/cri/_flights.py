"""Identical concurrent pulls share one pull, which stops when its last caller goes.

Single flight (upstream-issues F-26): a pull of the same reference with the same
credentials joins the running one instead of starting another. Each caller brings a
:class:`~refpull.budget.Cancel` (its RPC ending); the shared pull's own ``Cancel``
fires only when every caller has gone, so one impatient caller never fails the others,
and an abandoned pull never runs on for nobody.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from refpull.budget import Cancel

__all__ = ["Flights"]


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: str | None = None
        self.error: BaseException | None = None
        #: callers still waiting; the last one to give up cancels the pull.
        self.interest = 0
        self.cancel = Cancel()


class Flights:
    """The pulls running now, by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    def run(
        self,
        key: Hashable,
        pull: Callable[[Cancel], str],
        cancel: Cancel,
        gone: Callable[[str], BaseException],
    ) -> str:
        """Run ``pull(shared_cancel)``, or wait for the identical one running.

        Args:
            key: what makes two pulls identical.
            pull: the pull; it must stop when the shared cancel fires.
            cancel: this caller's signal; when it fires, this caller stops waiting.
            gone: the error a waiting caller raises once its own *cancel* fired.

        Returns:
            The pull's result.
        """
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            flight.interest += 1
        cancel.on_cancel(lambda reason: self._give_up(flight, reason))
        if not leader:
            while not flight.done.wait(0.1):
                if cancel.reason is not None:
                    raise gone(cancel.reason)  # the shared pull goes on for others
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            return flight.result
        try:
            flight.result = pull(flight.cancel)
            return flight.result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def _give_up(self, flight: _Flight, reason: str) -> None:
        """A caller of *flight* has gone; the last one to go cancels the pull."""
        with self._lock:
            flight.interest -= 1
            last = flight.interest <= 0 and not flight.done.is_set()
        if last:
            flight.cancel.cancel(reason)
