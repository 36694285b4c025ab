"""The endpoint vectors of ``fixtures/vectors/endpoints.json``, driven through a target.

Each vector names a registry host, a ``registry.mirrors`` table and the endpoints a
pull of that host tries, in order (EP-001, EP-002, EP-004, EP-005, EP-006). Here the
table is given to a second target of the session's kind (``configured_case``: a
``*`` mirror or an empty list would reroute every other case of the session), the
vector's host is pulled, and the endpoints the runtime tried are read from the
registry journal: every endpoint answers 404 for the manifest except the last
expected one, which holds the image, so a runtime that keeps to the vector visits each
endpoint once, in order, and the pull succeeds.

The vector's hosts are made real without changing what they mean:

* a host Go never proxies (``localhost`` and loopback IP literals) is a listener on
  that address with a free port standing for the vector's port, serving http or
  https with the run's CA as the vector expects, so a wrong scheme never gets an
  answer;
* any other host, IP literals such as ``192.0.2.10`` included, is a name the
  simulator's proxy serves for the case (``CONNECT`` for https, an absolute-form
  request for http), so the journal shows the scheme the runtime chose.

Expected orders and schemes come from the vector file only. Vectors that cannot be
driven this way are listed in ``NOT_DRIVEN`` with the reason.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cri_conformance.catalog import fixtures_dir
from cri_conformance.scenario import CONTAINERD_LINE, Case
from cri_conformance.targets.base import RegistrySetup
from cri_conformance.world import World
from registry_sim.journal import Exchange
from registry_sim.sim import RegistrySim

#: Vectors not driven here, and why (collection fails if one names no vector).
NOT_DRIVEN = {
    "EP-003-docker-hub-duplicate": (
        "two visits of one endpoint in a row read as one; test_tls_and_hosts's "
        "test_docker_hub_default_endpoint_is_tried_twice_when_configured_as_mirror "
        "counts them"
    ),
    "EP-002-host-compare-includes-port": (
        "https://registry.test:443 and https://registry.test are one origin: the "
        "journal cannot tell two visits of it from one"
    ),
    "EP-005-index-docker-io-unmapped": (
        "an image reference naming index.docker.io is docker.io before any endpoint "
        "is chosen (REF-003)"
    ),
    "EP-004-bare-ipv6-loopback-http": "no image reference can name the host ::1",
    "EP-004-bracketed-ipv6-https": (
        "no port to stand in for: the endpoint is port 443 of ::1, which the suite "
        "cannot listen on"
    ),
    "EP-004-mapped-loopback-seed": "no image reference can name ::ffff:127.0.0.1",
    "EP-004-mapped-loopback-1.6": "no image reference can name ::ffff:127.0.0.1",
    "EP-006-host-port-is-a-scheme-seed": (
        "the seed's endpoint 'mirror.local:5000' is no URL a request can reach; what "
        "the pull does then is RES-006's (test_endpoints_and_mirrors, schemeless.test)"
    ),
    "EP-006-bare-name-seed": (
        "the seed's endpoint 'mirror.local' is no URL a request can reach; what the "
        "pull does then is RES-006's"
    ),
}

#: Profiles some vector names; a later containerd profile takes the newest of them.
_VECTOR_LINE = ("seed", "containerd-1.6")
_PORT = re.compile(r":(\d+)$")


def _vectors() -> list[dict[str, Any]]:
    path = Path(fixtures_dir()) / "vectors" / "endpoints.json"
    vectors: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return vectors


def _params() -> list[Any]:
    vectors = _vectors()
    stale = set(NOT_DRIVEN) - {v["id"] for v in vectors}
    if stale:  # a renamed vector must not hide behind its old exclusion
        raise ValueError(f"NOT_DRIVEN names no vector: {sorted(stale)}")
    return [
        pytest.param(v, id=v["id"], marks=pytest.mark.behavior(v["behavior"]))
        for v in vectors
        if v["id"] not in NOT_DRIVEN
    ]


def _applies(vector: dict[str, Any], profile: str) -> bool:
    """The vector states *profile*'s behaviour (a later generation keeps 1.6's)."""
    if profile not in CONTAINERD_LINE:
        return False
    rank = CONTAINERD_LINE.index(profile)
    newest = [p for p in _VECTOR_LINE if CONTAINERD_LINE.index(p) <= rank][-1]
    return newest in vector["profiles"]


# -- the vector's hosts made real ------------------------------------------------------
def _split(authority: str) -> tuple[str, str | None]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    match = _PORT.search(authority)
    if match and authority.count(":") == 1:
        return authority[: match.start()], match.group(1)
    return authority, None


def _is_direct(host: str) -> bool:
    """Go never proxies ``localhost`` or a loopback IP (x/net/http/httpproxy useProxy).

    The ``localhost`` test is exact: ``LOCALHOST`` goes to the proxy like any name.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authority(endpoint: str) -> str:
    return urlsplit(endpoint).netloc if "://" in endpoint else endpoint


class _Realised:
    """The vector with its direct hosts moved to real listeners, and those listeners."""

    def __init__(self, vector: dict[str, Any], world: World) -> None:
        self.vector = vector
        self.listeners: dict[str, RegistrySim] = {}
        self.names: set[str] = set()
        mirrors: dict[str, list[str]] = vector["mirrors"]
        expected: list[str] = vector["expect"].get("endpoints", [])
        schemes = {_authority(e): urlsplit(e).scheme for e in expected}
        endpoints = [e for es in mirrors.values() for e in es]
        for endpoint in endpoints:
            if "://" in endpoint:
                schemes.setdefault(_authority(endpoint), urlsplit(endpoint).scheme)
        self._moved: dict[str, str] = {}
        ca = world.sim.ca  # the run's CA, which the runtime trusts
        assert ca is not None
        for authority in [vector["host"], *map(_authority, [*endpoints, *expected])]:
            host, port = _split(authority)
            if not _is_direct(host):
                self.names.add(host.lower())
                if host.lower() != "localhost":
                    continue
                # Go proxies LOCALHOST (its localhost test is exact), yet a resolver
                # finds the name on loopback: it is served both ways, as the vector
                # states only the scheme (whether it is proxied is XPORT-001's).
            if port is None or authority in self._moved:
                continue
            address = "127.0.0.1" if host.lower() == "localhost" else host
            https = schemes.get(authority, "http") == "https"
            sim = RegistrySim(host=address, tls=ca if https else False)
            moved = (
                f"[{host}]:{sim.server.port}"
                if ":" in host
                else f"{host}:{sim.server.port}"
            )
            self._moved[authority] = moved
            self.listeners[moved.lower()] = sim

    def move(self, text: str) -> str:
        """*text* with every direct ``host:port`` of the vector on its listener.

        One pass: a listener's port never gets rewritten as another vector port.
        """
        if not self._moved:
            return text
        olds = "|".join(map(re.escape, sorted(self._moved, key=len, reverse=True)))
        return re.sub(f"({olds})(?![0-9])", lambda m: self._moved[m[1]], text)

    @property
    def host(self) -> str:
        return self.move(self.vector["host"])

    @property
    def mirrors(self) -> dict[str, list[str]]:
        return {
            self.move(key): [self.move(e) for e in endpoints]
            for key, endpoints in self.vector["mirrors"].items()
        }

    @property
    def expected(self) -> list[str]:
        return [self.move(e) for e in self.vector["expect"].get("endpoints", [])]

    def close(self) -> None:
        for sim in self.listeners.values():
            sim.close()


@pytest.fixture(params=_params())
def realised(
    request: pytest.FixtureRequest, world: World, profile: str
) -> Iterator[_Realised]:
    vector: dict[str, Any] = request.param
    if not _applies(vector, profile):
        pytest.skip(f"not applicable: a vector of {', '.join(vector['profiles'])}")
    done = _Realised(vector, world)
    added = [n for n in sorted(done.names) if world.sim.router.named(n) is None]
    for name in added:
        world.sim.add_host(name)
    for sim in done.listeners.values():
        sim.start()
    yield done
    for name in added:
        world.sim.router.remove(name)
    done.close()


@pytest.fixture
def base_setup(world: World, realised: _Realised) -> RegistrySetup:
    """The session's setup; for a vector about docker.io, without its docker.io mirror.

    The vector states docker.io's own table. (The seed keeps its built-in docker.io
    mirror, CFG-002, unless the table names docker.io: that visit repeats the
    default endpoint and reads as one.)
    """
    setup = world.setup()
    vector = realised.vector
    if vector["host"].lower() != "docker.io" and "docker.io" not in vector["mirrors"]:
        return setup
    mirrors = {k: v for k, v in setup.mirrors.items() if k != "docker.io"}
    return dataclasses.replace(setup, mirrors=mirrors)


@pytest.fixture
def extra_setup(realised: _Realised) -> RegistrySetup:
    return RegistrySetup(
        mirrors=realised.mirrors,
        insecure_hosts=tuple(
            moved
            for moved, sim in realised.listeners.items()
            if not sim.url.startswith("https")
        ),
    )


# -- what the runtime tried ----------------------------------------------------------
def _tried(exchanges: list[Exchange], repo: str) -> list[str]:
    """Endpoints asked to resolve the tag, in order, each visit once.

    A retry (HEAD then GET) on one endpoint is one visit; so are two visits of the
    same endpoint in a row, which the journal cannot tell apart.

    Resolution walks the endpoints; fetching the manifest by digest afterwards walks
    them again, so only the tag's requests tell the order.
    """
    marker = f"/{repo}/manifests/"
    seen: list[str] = []
    for ex in exchanges:
        if not ex.path.endswith(f"{marker}1"):
            continue
        prefix = ex.path.split(marker, 1)[0]
        endpoint = f"{ex.scheme}://{ex.host}" + ("" if prefix == "/v2" else prefix)
        if not seen or seen[-1] != endpoint:
            seen.append(endpoint)
    return seen


def _journal(case: Case, realised: _Realised) -> list[Exchange]:
    mine = [ex for sim in realised.listeners.values() for ex in sim.journal.exchanges]
    return sorted([*case.exchanges(), *mine], key=lambda ex: ex.time)


def test_endpoint_vector_is_tried_in_its_order(
    configured_case: Case, realised: _Realised
) -> None:
    """The runtime tries the vector's endpoints, in order, each with its scheme."""
    case = configured_case
    case.require_tables()
    ref = f"{realised.host}/{case.repo}:1"
    expected = realised.expected
    if not expected:
        case.pull_error(ref)
        assert _tried(_journal(case, realised), case.repo) == []
        return
    image = case.image()
    last = urlsplit(expected[-1])
    serves = last.path in ("", "/v2")
    if serves:
        listener = realised.listeners.get(last.netloc.lower())
        if listener is not None:
            listener.push(image, f"{case.repo}:1")
        name = _split(last.netloc)[0].lower()
        if name in realised.names:
            case.world.sim.push(image, f"{case.repo}:1", host=name)
        assert case.pull(ref) == image.config_digest
    else:
        case.pull_error(ref)
    tried = _tried(_journal(case, realised), case.repo)
    # Host names compare without case (RFC 3986 3.2.2): LOCALHOST may arrive as either.
    assert [e.lower() for e in tried] == [e.lower() for e in expected]
