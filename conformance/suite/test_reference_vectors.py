"""The reference vectors of ``fixtures/vectors/references.json``, driven through a target.

Each vector gives an input string and either the error PullImage answers (with its
reason) or the normalized name and the registry host, repository and tag or digest
a pull of it asks for (REF-001..REF-013). Here the input is pulled:

* an error vector fails with gRPC Unknown, its reason in the message, before any
  registry (or the proxy) hears of it (ERR-001);
* a valid vector's host is made to serve the case's image under the vector's
  repository and tag: the pull succeeds, every request goes to that host and
  repository, and the manifest is asked for by the vector's tag (the image's
  recorded name is the IMG behaviours'). A digest vector's digest cannot be chosen:
  the manifest is asked for by that digest, at that host and repository, and the
  pull fails NotFound (Unknown where the simulator refuses the algorithm).

The vector's hosts are made real without changing what they mean:

* ``docker.io`` is Docker Hub: ``registry-1.docker.io`` (the session's docker.io
  mirror, the seed's built-in one and containerd's default endpoint all name it);
* a loopback host with a port (``127.0.0.1:5000``, ``localhost:5000``) is a plain-http
  listener on a free port standing for the vector's port (Go never proxies those);
* any other host is a name the simulator's proxy serves for the case, asked for with
  ``CONNECT`` at the vector's port (https's 443 when it has none).

A vector without ``profiles`` states the seed's and containerd 1.6's answer; a later
containerd generation keeps it unless a vector for the same input names that
generation. Expected values come from the vector file only. Vectors that cannot be
driven this way are listed in ``NOT_DRIVEN`` with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cri_conformance.catalog import fixtures_dir
from cri_conformance.scenario import CONTAINERD_LINE, Case
from cri_conformance.targets.base import Capability
from cri_conformance.world import World
from registry_sim.journal import Exchange
from registry_sim.sim import RegistrySim

_BY_THE_UPPER_CASE_CASE = (
    "driven per profile by test_references.py::"
    "test_upper_case_reference_follows_the_profiles_vector"
)

#: Vectors not driven here, and why (collection fails if one names no vector).
NOT_DRIVEN = {
    "REF-002-localhost": (
        "localhost without a port is port 80 or 443 of loopback, which the suite "
        "cannot listen on (and Go never proxies localhost)"
    ),
    "REF-002-port-not-range-checked": (
        "no listener, nor proxied name, can have port 99999999999999999999: what the "
        "runtime does after parsing is a dial error of its own"
    ),
    "REF-011-ipv6-literal": "an IPv6 literal host: the suite serves no IPv6 name",
    "REF-011-ipv6-literal-no-port": "an IPv6 literal host: the suite serves no IPv6 name",
    "REF-011-underscore-domain": (
        "the simulator's CA cannot issue a certificate for a name holding '_' (IDNA "
        "refuses it); test_references.py::test_underscore_host_is_still_contacted_as_"
        "a_host shows the CONNECT to the underscore host"
    ),
    "REF-002-uppercase-localhost-is-not-a-domain": _BY_THE_UPPER_CASE_CASE,
    "REF-002-uppercase-localhost-is-a-domain-from-1.7": _BY_THE_UPPER_CASE_CASE,
    "REF-005-uppercase-familiar": _BY_THE_UPPER_CASE_CASE,
    "REF-005-uppercase-familiar-quoted-from-1.7": _BY_THE_UPPER_CASE_CASE,
    "REF-005-uppercase-first-component": _BY_THE_UPPER_CASE_CASE,
    "REF-005-uppercase-first-component-is-a-domain-from-1.7": _BY_THE_UPPER_CASE_CASE,
    "REF-005-uppercase-second-component": _BY_THE_UPPER_CASE_CASE,
    "REF-005-uppercase-second-component-quoted-from-1.7": _BY_THE_UPPER_CASE_CASE,
    "REF-005-uppercase-digest-algorithm": _BY_THE_UPPER_CASE_CASE,
    "REF-005-uppercase-digest-algorithm-quoted-from-1.7": _BY_THE_UPPER_CASE_CASE,
    "REF-006-64-upper-hex-is-uppercase": _BY_THE_UPPER_CASE_CASE,
    "REF-006-64-upper-hex-quoted-from-1.7": _BY_THE_UPPER_CASE_CASE,
}

#: Profiles a vector without ``profiles`` states.
_GRAMMAR_16 = ("seed", "containerd-1.6")
#: Docker Hub's registry, as the session serves it.
_HUB = "registry-1.docker.io"
#: Digest algorithms the simulator does not implement: it answers a request naming one
#: 400 Bad Request (a transport error, Unknown) where it answers others 404.
_SIM_REFUSES = ("sha384",)
_LOOPBACK_PORT = re.compile(r"^(127\.0\.0\.1|localhost):(\d+)$")


_VECTORS: list[dict[str, Any]] = json.loads(
    (Path(fixtures_dir()) / "vectors" / "references.json").read_text(encoding="utf-8")
)
# A renamed vector must not hide behind its old exclusion: collection fails.
_UNKNOWN = sorted(set(NOT_DRIVEN).difference(v["id"] for v in _VECTORS))
if _UNKNOWN:
    raise ValueError(f"NOT_DRIVEN names no vector: {_UNKNOWN}")


def _params(*, errors: bool) -> list[Any]:
    """The driven vectors that are errors (or valid), each tagged with its behaviour."""
    driven = [v for v in _VECTORS if v["id"] not in NOT_DRIVEN]
    return [
        pytest.param(v, id=v["id"], marks=pytest.mark.behavior(v["behavior"]))
        for v in driven
        if ("error" in v["expect"]) == errors
    ]


def _applies(vector: dict[str, Any], profile: str) -> bool:
    """The vector states *profile*'s answer.

    One without ``profiles`` states the seed's and 1.6's, and a later containerd
    generation's unless another vector of the same input names that generation.
    """
    if "profiles" in vector:
        return profile in vector["profiles"]
    if profile in _GRAMMAR_16:
        return True
    if profile not in CONTAINERD_LINE:
        return False
    return not any(
        profile in other.get("profiles", ())
        for other in _VECTORS
        if other["input"] == vector["input"]
    )


def _skip_unless_applies(vector: dict[str, Any], profile: str) -> None:
    if not _applies(vector, profile):
        pytest.skip(f"no vector states {vector['input']!r} for {profile}")


# -- rejected before any request -----------------------------------------------------
@pytest.mark.behavior("ERR-001")
@pytest.mark.parametrize("vector", _params(errors=True))
def test_error_vector_fails_before_any_request(
    case: Case, vector: dict[str, Any]
) -> None:
    """PullImage of the input fails with Unknown and the vector's reason, unheard."""
    _skip_unless_applies(vector, case.profile)
    error = case.pull_error(vector["input"])
    assert error.code == "UNKNOWN", error
    assert vector["expect"]["reason"] in error.message, error.message
    seen = case.world.exchanges()
    assert seen == [], "\n".join(ex.line() for ex in seen)


# -- accepted: the vector's host and repository --------------------------------------
class _Served:
    """The vector's host made real, and where its requests are journaled."""

    def __init__(self, world: World, expect: dict[str, Any]) -> None:
        self.world = world
        self.listener: RegistrySim | None = None
        self.added: str | None = None
        host: str = expect["host"]
        self.moved = host  # the vector's authority as the runtime is given it
        loopback = _LOOPBACK_PORT.match(host)
        if host == "docker.io":
            self.name: str | None = _HUB
            self.authority = _HUB
            self.connect: str | None = f"{_HUB}:443"
        elif loopback:
            self.name = None
            self.listener = RegistrySim(host="127.0.0.1", tls=False)
            self.listener.start()
            self.moved = f"{loopback[1]}:{self.listener.server.port}"
            self.authority = self.moved
            self.connect = None
        else:
            name, _, port = host.partition(":")
            self.name = name.lower()
            self.authority = host
            self.connect = host if port else f"{host}:443"
            if world.sim.router.named(self.name) is None:
                world.sim.add_host(self.name)
                self.added = self.name

    def push(self, image: Any, reference: str) -> None:
        if self.listener is not None:
            self.listener.push(image, reference)
        else:
            self.world.sim.push(image, reference, host=self.name)

    def exchanges(self) -> list[Exchange]:
        mine = [] if self.listener is None else self.listener.journal.exchanges
        return sorted([*self.world.exchanges(), *mine], key=lambda ex: ex.time)

    def close(self) -> None:
        if self.added is not None:
            self.world.sim.router.remove(self.added)
        if self.listener is not None:
            self.listener.close()


@pytest.fixture(params=_params(errors=False))
def served(
    request: pytest.FixtureRequest, world: World, profile: str
) -> Iterator[tuple[dict[str, Any], _Served]]:
    vector: dict[str, Any] = request.param
    _skip_unless_applies(vector, profile)
    done = _Served(world, vector["expect"])
    yield vector, done
    done.close()


def _move(text: str, served: _Served, vector: dict[str, Any]) -> str:
    """*text* with the vector's loopback ``host:port`` on the listener's port."""
    host: str = vector["expect"]["host"]
    if served.moved == host or not text.startswith(host + "/"):
        return text
    return served.moved + text[len(host) :]


def test_valid_vector_reaches_its_host_and_repository(
    case: Case, served: tuple[dict[str, Any], _Served]
) -> None:
    """The pull asks the vector's host for the vector's repository and tag or digest."""
    vector, where = served
    expect = vector["expect"]
    if where.connect is not None:
        case.require(Capability.PROXY_ENVIRONMENT)
    repository: str = expect["repository"]
    obj: str = expect["object"]
    reference = obj.removeprefix("@")
    image = case.image()
    if expect["digest"] is None:
        where.push(image, f"{repository}:{expect['tag']}")
        assert case.pull(_move(vector["input"], where, vector)) == image.config_digest
        # The image is listed under the vector's normalized name (STORE-004): a
        # runtime that re-reads its stored name with another grammar drops it.
        info = case.status(image.config_digest)
        assert info is not None
        assert info.repo_tags == (_move(expect["normalized"], where, vector),)
        allowed = {reference, image.digest}
    else:
        error = case.pull_error(_move(vector["input"], where, vector))
        refused = expect["digest"].split(":", 1)[0] in _SIM_REFUSES
        assert error.code == ("UNKNOWN" if refused else "NOT_FOUND"), error
        allowed = {reference}
    seen = where.exchanges()
    journal = "\n".join(ex.line() for ex in seen)
    connects = {ex.host.lower() for ex in seen if ex.method == "CONNECT"}
    assert connects == ({where.connect.lower()} if where.connect else set()), journal
    # A TLS hello on a plain-http listener (2.0's https-first loopback probe, EP-004)
    # is no request: which scheme comes first is EP-004's, not the vector's.
    requests = [
        ex for ex in seen if ex.method != "CONNECT" and ex.fault != "malformed-request"
    ]
    assert {ex.host.lower() for ex in requests} == {where.authority.lower()}, journal
    prefix = f"/v2/{repository}/"
    assert all(ex.path.startswith(prefix) for ex in requests), journal
    manifests = [ex.path for ex in requests if "/manifests/" in ex.path]
    assert set(manifests) <= {f"{prefix}manifests/{r}" for r in allowed}, journal
    assert f"{prefix}manifests/{reference}" in manifests, journal
