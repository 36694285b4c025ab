"""Where an endpoint's TLS settings end: the hops a registry sends the puller to.

Catalog TLS-007 (behaviors.md §4). ``skipverify.test`` is served by a registry whose
certificate no CA of the run vouches for, with ``insecure_skip_verify`` configured for
its ``host:port`` (``World.setup``); ``world.untrusted`` is a second https registry
with an untrusted certificate and no settings at all. When the first sends the
puller to the second (a blob redirect, a token realm), that hop must be verified with
the default trust: the handshake fails and the second registry sees no request. A
runtime that carries the endpoint's skip-verify to the other host lets anyone who can
answer for that host read (and serve) what the pull fetches there.
"""

from __future__ import annotations

import pytest

from cri_conformance.scenario import Case
from registry_sim.faults import BearerChallenge, Fault, Match, Redirect
from registry_sim.sim import RegistrySim


def _requests(sim: RegistrySim) -> list[str]:
    """Everything *sim* was asked during the case (a token GET names no repository)."""
    return [ex.line() for ex in sim.journal.exchanges]


@pytest.mark.behavior("TLS-007")
def test_a_skip_verify_endpoints_blob_redirect_is_verified(case: Case) -> None:
    """A redirect from a skip-verify endpoint to an untrusted https host fails."""
    origin, storage = case.world.untrusted_skip, case.world.untrusted
    image = case.image()
    origin.push(image, f"{case.repo}:1")
    storage.push(image, f"{case.repo}:1")
    origin.faults.add(
        Fault(Match(method="GET", path="/blobs/"), Redirect(f"{storage.url}{{path}}"))
    )
    case.pull_error(case.ref("1", host="skipverify.test"))
    redirected = [ex for ex in origin.journal.exchanges if ex.status == 307]
    assert redirected, _requests(origin)  # the hop was offered
    assert _requests(storage) == []


@pytest.mark.behavior("TLS-007")
def test_a_skip_verify_endpoints_token_realm_is_verified(case: Case) -> None:
    """A token realm on an untrusted https host named by a skip-verify endpoint fails."""
    origin, realm = case.world.untrusted_skip, case.world.untrusted
    origin.push(case.image(), f"{case.repo}:1")
    origin.faults.add(
        Fault(
            Match(path="^/v2/"),
            BearerChallenge(
                realm=f"{realm.url}/token", service="skipverify.test", repo=case.repo
            ),
        )
    )
    case.pull_error(case.ref("1", host="skipverify.test"))
    challenged = [ex for ex in origin.journal.exchanges if ex.status == 401]
    assert challenged, _requests(origin)  # the realm was named (a ping names no repo)
    assert _requests(realm) == []
