"""``Target.pull(timeout=…)``: every target kind gives a PullImage call a deadline.

Over CRI the deadline is the gRPC call's own; the in-process reference target waits
at most that long and then cancels the pull as ``refpull serve`` does when an RPC's
deadline passes (XPORT-010). The suite's stall cases rely on both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cri_conformance.targets.base import RegistrySetup, TargetEnvironment, TargetError
from cri_conformance.targets.cri import CRIClient
from cri_conformance.targets.reference import ReferenceTarget
from refpull.budget import Cancel, PullCanceled
from refpull.cri.service import ServiceError


class _Service:
    """An ImageService stand-in whose pull does what the test says."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.reason: str | None = None
        self.stopped = threading.Event()

    def pull_image(
        self, image: str, auth: Any = None, cancel: Cancel | None = None
    ) -> str:
        if self.behaviour == "answers":
            return "sha256:" + "a" * 64
        if self.behaviour == "cancelled":
            raise ServiceError("pull failed", cause=PullCanceled("context canceled"))
        assert cancel is not None
        limit = time.monotonic() + 30
        while cancel.reason is None and time.monotonic() < limit:
            time.sleep(0.01)
        self.reason = cancel.reason
        self.stopped.set()
        raise ServiceError("pull failed", cause=PullCanceled(str(cancel.reason)))

    def close(self) -> None:
        pass


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceTarget]:
    target = ReferenceTarget(
        root=tmp_path,
        profile="containerd-1.6",
        setup=RegistrySetup(),
        environment=TargetEnvironment(),
    )
    yield target
    target.close()


def _swap(target: ReferenceTarget, behaviour: str) -> _Service:
    target._service.close()
    service = _Service(behaviour)
    target._service = service  # type: ignore[assignment]
    return service


def test_in_process_pull_past_its_deadline_is_cancelled(
    reference: ReferenceTarget,
) -> None:
    service = _swap(reference, "stalls")
    with pytest.raises(TargetError) as raised:
        reference.pull("registry.test/stalled:1", timeout=0.2)
    assert raised.value.code == "DEADLINE_EXCEEDED"
    assert service.stopped.wait(10)
    assert service.reason == "context deadline exceeded"


def test_in_process_pull_within_its_deadline_answers_at_once(
    reference: ReferenceTarget,
) -> None:
    _swap(reference, "answers")
    started = time.monotonic()
    assert reference.pull("registry.test/quick:1", timeout=60) == "sha256:" + "a" * 64
    assert time.monotonic() - started < 30


def test_in_process_pull_error_keeps_its_code_under_a_deadline(
    reference: ReferenceTarget,
) -> None:
    _swap(reference, "cancelled")
    with pytest.raises(TargetError) as raised:
        reference.pull("registry.test/gone:1", timeout=60)
    assert raised.value.code == "CANCELLED"


def test_cri_pull_carries_its_own_deadline() -> None:
    client = CRIClient("unix:///nonexistent/cri.sock", api="v1", timeout=120.0)
    seen: list[float] = []

    def pull_image(request: Any, timeout: float) -> SimpleNamespace:
        seen.append(timeout)
        return SimpleNamespace(image_ref="sha256:1")

    client._images = SimpleNamespace(PullImage=pull_image)
    try:
        client.pull("registry.test/a:1")
        client.pull("registry.test/a:1", timeout=2.5)
    finally:
        client.close()
    assert seen == [120.0, 2.5]
