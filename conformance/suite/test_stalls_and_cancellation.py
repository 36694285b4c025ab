"""A registry that trickles bytes must not freeze the runtime (XPORT-010, XPORT-011).

Issue 12: twenty pulls from a registry sending one byte per second, each with a short
client deadline, left ``refpull serve`` with every worker busy and Version, ListImages
and healthy pulls timing out. Both scenarios are black-box and bind every CRI runtime:

* a caller that gives up stops its pull -- the runtime closes the trickled transfer
  (the simulator sees no response in flight any more), lists no image of it, and
  answers Version, ListImages and a healthy pull at once (XPORT-010);
* while twenty trickled pulls are still running, Version, ListImages and a pull from
  a healthy repository answer within seconds (XPORT-011).

The call deadline is the target's (``Target.pull(timeout=…)``): a gRPC deadline for a
runtime spoken to over CRI; the in-process reference target cancels the pull at the
deadline as its gRPC server does. Every wait is bounded, in seconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from cri_conformance.scenario import DEADLINE_CODES, Case
from cri_conformance.targets.base import TargetError
from cri_conformance.targets.cri import CRIClient
from registry_sim.faults import Drip, Fault, Match

#: How long the simulator may take to see a closed transfer (one drip slice, a write).
_SETTLE_S = 6.0


def _slow_repos(case: Case, count: int) -> list[str]:
    """Push *count* distinct images whose blobs the registry sends at 1 byte/s."""
    repos = []
    for n in range(count):
        repo = f"{case.repo}-slow-{n}"
        case.world.sim.push(case.image(salt=f"slow-{n}"), f"{repo}:1")
        repos.append(repo)
    slow = f"^/v2/{re.escape(case.repo)}-slow-[0-9]+/blobs/"
    case.world.add_fault(Fault(Match(method="GET", path=slow), Drip(1)))
    return repos


def _impatient(case: Case, seconds: float) -> Callable[[str], str]:
    """A pull with a *seconds* deadline; returns the status code name ("OK" if done)."""

    def pull(image: str) -> str:
        try:
            case.target.pull(image, timeout=seconds)
        except TargetError as exc:
            return exc.code
        return "OK"

    return pull


def _version(case: Case) -> None:
    client = getattr(case.target, "client", None)
    if isinstance(client, CRIClient):
        quick = CRIClient(client.endpoint, api=client.api, timeout=5)
        quick.version()


def _in_flight(case: Case) -> bool:
    """Whether the simulator is still writing a response (a trickled blob)."""
    return not case.world.sim.server.quiesce(timeout=0.05)


def _listed(case: Case) -> set[str]:
    return {tag for image in case.target.list() for tag in image.repo_tags}


@pytest.mark.behavior("XPORT-010")
def test_a_pull_whose_caller_gave_up_stops_and_lists_nothing(case: Case) -> None:
    """Four pulls from a trickling registry, 2 s deadlines: the transfers close, no
    image is listed, and Version, ListImages and a healthy pull answer at once."""
    repos = _slow_repos(case, 4)
    healthy = case.image(salt="healthy")
    case.push(healthy, "1")
    pull = _impatient(case, 2.0)
    host = case.world.sim.host_port
    with ThreadPoolExecutor(max_workers=len(repos)) as pool:
        codes = list(pool.map(pull, [f"{host}/{repo}:1" for repo in repos]))
    # Every call ended at its deadline (either code: see DEADLINE_CODES).
    assert set(codes) <= DEADLINE_CODES, codes
    ended = time.monotonic()
    assert case.world.sim.server.quiesce(timeout=_SETTLE_S), (
        f"{_SETTLE_S:g} s after the callers' deadlines the runtime is still "
        "receiving the trickled blobs: the abandoned pulls did not stop"
    )
    settled = time.monotonic() - ended
    started = time.monotonic()
    _version(case)
    listed = _listed(case)
    assert case.pull(case.ref("1")) == healthy.config_digest
    answered = time.monotonic() - started
    assert not {f"{host}/{repo}:1" for repo in repos} & listed
    for repo in repos:
        assert case.status(f"{host}/{repo}:1") is None
    assert answered < 10.0, f"Version, ListImages and a pull took {answered:.1f} s"
    case.calls.append(f"transfers closed {settled:.1f} s after the deadlines")


@pytest.mark.behavior("XPORT-011")
def test_other_calls_answer_while_trickled_pulls_run(case: Case) -> None:
    """Twenty pulls held by a 1 byte/s registry: Version, ListImages and a pull of a
    healthy image still answer within seconds, while the twenty are still running."""
    repos = _slow_repos(case, 20)
    healthy = case.image(salt="healthy")
    case.push(healthy, "1")
    pull = _impatient(case, 12.0)
    host = case.world.sim.host_port
    pool = ThreadPoolExecutor(max_workers=len(repos))
    try:
        pending = [pool.submit(pull, f"{host}/{repo}:1") for repo in repos]
        deadline = time.monotonic() + 5
        while not _in_flight(case) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _in_flight(case), "the trickled pulls never reached their blobs"
        started = time.monotonic()
        _version(case)
        listed = _listed(case)
        assert case.pull(case.ref("1")) == healthy.config_digest
        answered = time.monotonic() - started
        still_running = _in_flight(case)
    finally:
        codes = [future.result() for future in pending]
        pool.shutdown()
    assert answered < 6.0, (
        f"with 20 stalled pulls, Version, ListImages and a pull took {answered:.1f} s"
    )
    assert still_running, "the stalled pulls ended before the other calls were timed"
    assert not {f"{host}/{repo}:1" for repo in repos} & listed
    # The stalled pulls fail at their deadline (or are refused outright, a bound on
    # concurrent pulls); none of them produced an image.
    assert set(codes) <= DEADLINE_CODES | {"RESOURCE_EXHAUSTED"}, codes
    case.world.sim.server.quiesce(timeout=_SETTLE_S)
    for repo in repos:
        assert case.status(f"{host}/{repo}:1") is None
