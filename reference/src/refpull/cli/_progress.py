"""How ``refpull pull`` shows a pull's :class:`~refpull.pull.puller.ProgressEvent` values.

Three renderings, all on stderr (stdout carries only the image ID):

* a terminal: one ``rich`` bar per layer, downloads running side by side, each with
  its percent, bytes, rate and time left; the other events print above the bars;
* not a terminal (CI logs, pipes): plain lines, one when a layer starts, one every
  :data:`PLAIN_INTERVAL` seconds while it downloads (percent and rate), one when it
  is done;
* ``--json``: one JSON object per line with the keys ``kind``, ``reference``,
  ``digest``, ``size``, ``done`` and ``elapsed`` (seconds since the pull began).
  ``kind`` is ``resolved`` (``digest``/``size``: the resolved manifest or index),
  ``layer-started``, ``layer-bytes`` (``done``: bytes downloaded so far; at most
  :data:`JSON_RATE` per second per layer), ``layer-done`` (``done == size``),
  ``layer-exists`` (the blob was already in the content store; ``done == size``),
  ``unpacked`` (``digest``: the chain ID) or ``recorded`` (the image record).

Events arrive from download threads; each renderer serializes them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from types import TracebackType
from typing import TextIO

from refpull.pull.puller import ProgressEvent

__all__ = ["JSON_RATE", "PLAIN_INTERVAL", "ProgressRenderer", "make_renderer"]

#: Seconds between two plain progress lines of one layer.
PLAIN_INTERVAL = 5.0
#: At most this many ``layer-bytes`` JSON lines per second per layer.
JSON_RATE = 10


def _short(digest: str) -> str:
    algorithm, _, hexa = digest.partition(":")
    return f"{algorithm}:{hexa[:12]}" if hexa else digest


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


class ProgressRenderer:
    """Base renderer: a context manager and an event callback (shows nothing)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def __enter__(self) -> ProgressRenderer:
        self.started = time.monotonic()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def __call__(self, event: ProgressEvent) -> None:
        return None

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class _Json(ProgressRenderer):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._last: dict[str, float] = {}

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        with self.lock:
            if event.kind == "layer-bytes" and event.done < event.size:
                if now - self._last.get(event.digest, 0.0) < 1 / JSON_RATE:
                    return
                self._last[event.digest] = now
            data = {**asdict(event), "elapsed": round(now - self.started, 3)}
            print(json.dumps(data, sort_keys=True), file=self.stream, flush=True)


class _Plain(ProgressRenderer):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._begun: dict[str, float] = {}
        self._shown: dict[str, float] = {}

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        with self.lock:
            layer = f"layer {_short(event.digest)}"
            if event.kind == "layer-started":
                self._begun[event.digest] = self._shown[event.digest] = now
                self._line(f"{layer} downloading {_size(event.size)}")
            elif event.kind == "layer-bytes":
                if now - self._shown.get(event.digest, now) >= PLAIN_INTERVAL:
                    self._shown[event.digest] = now
                    spent = now - self._begun.get(event.digest, now)
                    rate = event.done / spent if spent > 0 else 0.0
                    percent = 100 * event.done / event.size if event.size else 0
                    self._line(
                        f"{layer} {percent:.0f}% {_size(event.done)} of "
                        f"{_size(event.size)}, {_size(rate)}/s"
                    )
            elif event.kind == "layer-done":
                spent = now - self._begun.pop(event.digest, now)
                speed = f", {_size(event.size / spent)}/s" if spent > 0 else ""
                self._line(f"{layer} done {_size(event.size)} in {spent:.1f} s{speed}")
            elif event.kind == "layer-exists":
                self._line(f"{layer} already present")
            else:
                self._line(f"{event.kind} {event.digest}".rstrip())


class _Bars(ProgressRenderer):
    """One rich progress bar per layer (a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskID,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        super().__init__(stream)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream, highlight=False),
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressRenderer:
        super().__enter__()
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, event: ProgressEvent) -> None:
        progress = self._progress
        with self.lock:
            task = self._tasks.get(event.digest)
            if event.kind in ("layer-started", "layer-exists") and task is None:
                task = self._tasks[event.digest] = progress.add_task(
                    _short(event.digest), total=event.size or None
                )
            if task is None:
                progress.console.print(f"{event.kind} {event.digest}".rstrip())
            elif event.kind == "layer-bytes":
                progress.update(task, completed=min(event.done, event.size))
            elif event.kind == "layer-exists":
                progress.update(
                    task,
                    completed=event.size,
                    description=f"{_short(event.digest)} (present)",
                )
            elif event.kind == "layer-done":
                progress.update(task, completed=event.size)


def make_renderer(mode: str, stream: TextIO) -> ProgressRenderer:
    """The renderer for *mode* (``quiet``, ``json`` or ``text``) on *stream*."""
    if mode == "quiet":
        return ProgressRenderer(stream)
    if mode == "json":
        return _Json(stream)
    if stream.isatty():
        return _Bars(stream)
    return _Plain(stream)
