"""A token realm that redirects to another host (TOKEN-011, SECURITY).

The registry ``redirect.test`` challenges with a realm on its own https host; the
realm answers every token request (or only the GETs) with a redirect to
``auth.standard.token.test``, a token server that records the user of every request
it sees (form or Basic, checked or not). Whatever the runtime does with the redirect,
that other host must never see the pull's credentials: a password form resent there
by a 307/308, or Basic credentials replayed on the redirected GET, is a leak.
"""

from __future__ import annotations

import contextlib

import pytest

from cri_conformance.scenario import Case
from cri_conformance.targets.base import TargetError
from registry_sim.faults import BearerChallenge, Fault, Match, Redirect

ALICE = {"username": "alice", "password": "alice-secret"}
REGISTRY = "redirect.test"
OTHER_HOST = "auth.standard.token.test"

#: (methods the realm redirects, status). A POST the realm does not redirect is
#: answered 404 (the path is no registry route), which sends containerd and refpull
#: to the GET with Basic credentials (TOKEN-003), so the GET's redirect is reached.
SHAPES = {
    "post-and-get-307": ("GET POST", 307),
    "post-and-get-308": ("GET POST", 308),
    "get-only-302": ("GET", 302),
    "get-only-307": ("GET", 307),
}


@pytest.mark.behavior("TOKEN-011")
@pytest.mark.parametrize("shape", list(SHAPES))
def test_credentials_never_follow_a_realm_redirect_to_another_host(
    case: Case, shape: str
) -> None:
    """The other host sees no request naming a user (anonymous ones are fine, so is
    refusing the pull)."""
    methods, status = SHAPES[shape]
    server = case.world.tokens["standard"].token_server
    realm_path = f"/realm/{case.repo}"
    challenge = BearerChallenge(f"https://{REGISTRY}{realm_path}", REGISTRY, case.repo)
    case.world.add_fault(
        Fault(
            Match(method=methods, path=f"^{realm_path}$"),
            Redirect(f"https://{OTHER_HOST}/token{{query}}", status=status),
        ),
        host=REGISTRY,
    )
    # The /v2/ ping challenges too: CRI-O learns a registry's challenge from it.
    case.world.add_fault(
        Fault(Match(path=f"^/v2/$|^/v2/{case.repo}/"), challenge), host=REGISTRY
    )
    case.push(case.image(), "1", host=REGISTRY)
    with contextlib.suppress(TargetError):
        case.pull(case.ref("1", host=REGISTRY), auth=ALICE)
    realm_hits = [
        (ex.method, ex.status)
        for ex in case.world.exchanges()
        if ex.host.split(":")[0] == REGISTRY and ex.path == realm_path
    ]
    # The scenario proves something only if the realm was asked at all.
    assert realm_hits, case.journal_text()
    leaks = [
        (r.method, r.grant_type, r.user, r.authenticated)
        for r in server.requests
        if r.user is not None
    ]
    assert leaks == [], f"credentials reached {OTHER_HOST}: {leaks}; realm {realm_hits}"
