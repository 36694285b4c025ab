"""Credentials that must never travel in clear text or come back over CRI.

Catalog areas AUTH, CHAL and ERR (behaviors.md §7, §10); upstream findings F-03, F-07.
"""

from __future__ import annotations

import contextlib

import pytest

from cri_conformance.catalog import family_of
from cri_conformance.scenario import Case
from cri_conformance.targets.base import RegistrySetup, TargetError
from registry_sim.faults import Fault, Match, Redirect

ALICE = {"username": "alice", "password": "alice-secret"}


@pytest.mark.behavior("AUTH-011")
def test_authorization_is_not_replayed_after_an_https_to_http_redirect(
    case: Case,
) -> None:
    """An https registry redirecting a blob to plain http on its own name gets no
    Authorization replayed in clear text.

    ``basic.test`` challenges with Basic and is reached over https (the suite's proxy);
    the layer GET is redirected to ``http://basic.test`` (the same name and, by default
    port, the same host key an authorizer may have). The plain-http request carries a
    query the redirect rule does not match, so it is answered by the registry itself:
    401 without credentials, the blob with leaked ones. Not following the redirect at
    all is safe too; what must never be seen is a credential on the http request.
    """
    host = "basic.test"
    image = case.image()
    case.push(image, "1", host=host)
    layer = str(image.layer_descriptors[0]["digest"])
    case.world.add_fault(
        Fault(
            Match(method="GET", path=layer + "$", query="^$"),
            Redirect("http://basic.test{path}?downgraded=1"),
        ),
        host=host,
    )
    with contextlib.suppress(TargetError):
        case.pull(case.ref("1", host=host), auth=ALICE)
    exchanges = case.exchanges(host=host)
    redirected = [
        ex
        for ex in exchanges
        if ex.scheme == "https" and ex.path.endswith(layer) and ex.status == 307
    ]
    assert redirected, "the layer GET was never redirected:\n" + case.journal_text()
    assert {ex.auth for ex in redirected} == {("basic", "alice")}
    leaked = [
        f"{ex.method} http://{ex.host}{ex.target} -> {ex.status} ({ex.auth[0]})"
        for ex in exchanges
        if ex.scheme != "https" and ex.auth is not None
    ]
    assert leaked == [], (
        "Authorization sent in clear text after an https-to-http redirect: "
        + "; ".join(leaked)
    )


#: A password written into mirror endpoint URLs (``scheme://user:password@host``).
MIRROR_PASSWORD = "TOPSECRETmirrorpw"


class TestMirrorEndpointPasswords:
    """A mirror endpoint carrying ``user:password@`` whose use fails (ERR-003).

    Runtimes quote the endpoint in the error of a mirror they cannot use; the
    password in it must be masked (Go's ``URL.Redacted``) or left out. Two failures:
    an endpoint that does not parse (a space in the host) and one whose host has a
    client certificate without its key (``certonly-mirror.test`` in the session's
    setup).
    """

    @pytest.fixture
    def extra_setup(self) -> RegistrySetup:
        return RegistrySetup(
            mirrors={
                "pw-unparsable.test": [
                    f"https://mirror-user:{MIRROR_PASSWORD}@bad host"
                ],
                "pw-certonly.test": [
                    f"https://mirror-user:{MIRROR_PASSWORD}@certonly-mirror.test"
                ],
            }
        )

    @pytest.mark.behavior("ERR-003")
    @pytest.mark.parametrize("host", ["pw-unparsable.test", "pw-certonly.test"])
    def test_a_mirror_password_never_reaches_the_pull_error(
        self, configured_case: Case, host: str
    ) -> None:
        """The failed pull's error names no password from the mirror's URL."""
        case = configured_case
        # A user:password@ endpoint is a registry.mirrors string; hosts.toml keys
        # give endpoint strings their own meaning (graded by test_hosts_toml.py).
        case.require_tables()
        if family_of(case.profile) == "crio":
            pytest.skip(
                "unsupported: a registries.conf mirror location is host[:port][/path]; "
                "it has no place for a scheme or user:password@"
            )
        error = case.pull_error(case.ref("1", host=host))
        assert MIRROR_PASSWORD not in error.message, error.message


@pytest.mark.behavior("CHAL-008")
def test_a_redirect_target_is_reauthorized_only_from_containerd_16(case: Case) -> None:
    """A blob redirected to a Bearer registry gets that registry's own token only where
    the profile re-authorizes redirect hops.

    ``upstream.test`` (no auth) redirects the layer to ``standard.token.test``, which
    challenges with Bearer and grants anonymous pulls. The 401 gives the pull a handler
    for the target host. From containerd 1.6 the redirect hop goes through the
    authorizer, which adds the target's own (anonymous) token; the seed follows Go's
    policy and never re-authorizes a hop, so the target never sees a token.
    """
    source, target = "upstream.test", case.world.tokens["standard"].registry
    image = case.image()
    case.push(image, "1", host=source)
    case.push(image, "1", host=target)
    layer = str(image.layer_descriptors[0]["digest"])
    case.world.add_fault(
        Fault(
            Match(method="GET", path=layer + "$"),
            Redirect(f"https://{target}{{path}}"),
        ),
        host=source,
    )
    try:
        pulled: str | None = case.pull(case.ref("1", host=source))
    except TargetError:
        pulled = None
    at_target = case.exchanges(host=target)
    assert at_target, "the redirect was not followed:\n" + case.journal_text()
    kinds = sorted({(ex.auth[0], ex.auth[1].split()[0]) for ex in at_target if ex.auth})
    if case.since("containerd-1.6"):
        assert kinds == [("bearer", "sub=-")], case.journal_text()
        assert pulled == image.config_digest
    else:
        assert kinds == [], case.journal_text()
        assert pulled is None
