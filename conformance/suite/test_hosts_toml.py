"""The hosts.toml vectors of ``fixtures/vectors/hosts-toml.json``, against a runtime.

Each vector states the endpoints containerd builds for one registry from a
``registry.config_path`` directory (HOST-010..HOST-014, CFG-004). Here the vector's
files become the ``hosts.toml`` files of a second target of the session's kind
(``configured_case``), the image lives only on the vector's last endpoint (the
``server`` or the registry itself), and the simulator notes each request as it
arrives (the journal's order can swap two exchanges of different connections):

* for the tag, every endpoint with ``pull`` and ``resolve``, in order, at its exact
  scheme, host and path (``/v2`` appended unless ``override_path``);
* for the config blob, every endpoint in order: containerd's fetcher walks all of a
  registry's hosts for content, whatever their ``capabilities`` (1.6.20 to 2.3.4
  ``remotes/docker/fetcher.go`` ``Fetch`` loops ``r.hosts``);
* an entry's ``header`` table on every request to it, and on no other.

So that all vectors fit in one configuration, every ``<name>.test`` of a vector
becomes ``<name>.<vector id>.test`` (a host directory, a URL and the expected hosts
alike); the simulator serves those names behind its proxy. ``_default`` applies to
every registry without a directory, so its vector gets a target of its own. Vectors
that need files other than ``hosts.toml`` (relative ``ca``/``client`` paths), a
second root, fixed loopback ports or Docker Hub stay unit-level
(``reference/tests/test_hoststoml.py``); the default loopback and Docker Hub hosts are
what every other case of a hosts-style run pulls from. The seed has no
``config_path``: these cases are UNSUPPORTED there. The file's ``reference_gaps``
(and any vector with a ``reference_gap``) were measured on the real runtimes and run
against them; the reference, which does not satisfy them yet, skips them saying why.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cri_conformance.catalog import fixtures_dir
from cri_conformance.scenario import Case
from cri_conformance.targets.base import RegistrySetup
from cri_conformance.world import World
from registry_sim.app import RegistryApp
from registry_sim.faults import Custom, Fault, Match
from registry_sim.wire import Request, Response

_DATA: dict[str, Any] = json.loads(
    (fixtures_dir() / "vectors" / "hosts-toml.json").read_text(encoding="utf-8")
)

#: The generation of a vector each profile is graded by (``generations`` column).
_GENERATION = {
    "containerd-1.6": "1.6",
    "containerd-1.7": "1.7",
    "containerd-2.0": "2.x",
    "containerd-2.3": "2.x",
}

#: Vectors a runtime cannot be given here, and why (they stay unit-level).
_UNIT_ONLY = {
    "docker-io-default": "Docker Hub's directory is the session's own (EP-005)",
    "loopback-port-1.6-http-skip": "a fixed loopback port",
    "loopback-port-1.7-https-first": "a fixed loopback port",
    "loopback-port-80-1.7-plain": "loopback port 80",
    "loopback-port-80-1.6": "loopback port 80",
    "loopback-no-port-1.7-https": "loopback port 443",
    "loopback-no-port-1.6-http": "loopback port 443",
    "second-root": "a second config_path root",
    "second-root-1.6": "a second config_path root",
    "http-with-ca-1.6": "a ca file relative to the host directory",
    "http-with-ca-1.7": "a ca file relative to the host directory",
    "client-forms": "client files relative to the host directory",
    "root-settings-apply-to-default-host": "a ca file that does not exist",
    # (its 1.6 variant runs: 1.6 never reads that file, containerd#10027)
}

#: The registries this module added to a world's simulator: (world id, name) -> app.
_APPS: dict[tuple[int, str], RegistryApp] = {}

_NAME = re.compile(r"(?<![\w.-])([a-z0-9-]+)\.test(?=$|[^a-z0-9.-])")


def _vectors(*, default_dir: bool) -> list[Any]:
    return [
        pytest.param(v, id=v["id"])
        for v in [*_DATA["vectors"], *_DATA["reference_gaps"]]
        if v["id"] not in _UNIT_ONLY
        and any(f.startswith("_default/") for f in v["files"]) == default_dir
    ]


def _private(text: str, vector: dict[str, Any]) -> str:
    """The vector's ``<name>.test`` hosts renamed ``<name>.<vector id>.test``."""
    return _NAME.sub(lambda m: f"{m[1]}.{vector['id']}.test", text)


def _bare(host: str) -> str:
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _setup(world: World, profile: str, vectors: list[Any]) -> RegistrySetup:
    """hosts.toml files of *vectors*, their hosts served by the simulator."""
    if profile not in _GENERATION:
        pytest.skip(f"unsupported: {profile} has no registry.config_path (hosts.toml)")
    files: dict[str, str] = {}
    for param in vectors:
        vector = param.values[0]
        for name, text in vector["files"].items():
            directory, _, leaf = name.rpartition("/")
            if leaf != "hosts.toml":
                continue  # certificate files: not written (see the module docstring)
            files[_private(directory, vector)] = _private(text, vector)
        # Every name in the files is served too, so a host the vector does not
        # expect is seen when asked (not refused by the proxy unseen).
        named = {
            f"{m[1]}.test"
            for text in vector["files"].values()
            for m in _NAME.finditer(text)
        }
        hosts = {vector["registry"], *(e["host"] for e in vector["endpoints"]), *named}
        for host in hosts:
            name = _bare(_private(host, vector))
            if (id(world), name) not in _APPS:
                app = world.sim.add_host(name)
                assert app is not None
                _APPS[id(world), name] = app
    return RegistrySetup(hosts_toml=files, config_style="hosts")


def _applicable(case: Case, vector: dict[str, Any]) -> None:
    if _GENERATION[case.profile] not in vector["generations"]:
        pytest.skip(f"not applicable: a vector of containerd {vector['generations']}")
    if "reference_gap" in vector and case.target.name.startswith("reference"):
        # Measured on the real runtimes; the reference is wrong here, not the vector.
        pytest.skip(f"known reference gap: {vector['reference_gap']}")


def _origin(scheme: str, host: str) -> tuple[str, str]:
    """*scheme* and *host* without the scheme's default port (``Host: m:80`` is ``m``)."""
    default = {"http": ":80", "https": ":443"}[scheme]
    return scheme, host.removesuffix(default)


def _arrivals(world: World, vector: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(scheme, host, path) of every request to the vector's hosts, as they arrive.

    Recorded when the simulator handles a request, before it answers: a fallback
    request is sent only once the previous answer arrived, so this order is the
    runtime's. (The journal records an exchange after writing its answer, so two
    exchanges on different connections may be recorded the other way round.)
    """
    seen: list[tuple[str, str, str]] = []

    def note(request: Request, response: Response) -> Response:
        seen.append((*_origin(request.scheme, request.host), request.path))
        return response

    for (world_id, name), app in _APPS.items():
        if world_id == id(world) and name.endswith(f".{vector['id']}.test"):
            app.faults.add(Fault(Match(), Custom(note), name="arrival-order"))
    return seen


def _runs(seen: list[tuple[str, str, str]], suffix: str) -> list[tuple[str, str, str]]:
    """The requests for a path ending in *suffix*, one repeated at once counted once."""
    runs: list[tuple[str, str, str]] = []
    for key in seen:
        if key[2].endswith(suffix) and (not runs or runs[-1] != key):
            runs.append(key)
    return runs


def _check_vector(case: Case, vector: dict[str, Any]) -> None:
    _applicable(case, vector)
    style = getattr(case.target, "registry_style", "hosts")
    if style != "hosts":
        pytest.skip(
            f"unsupported: the {case.target.name} target is configured with registry "
            "tables (--registry-config-style tables): hosts.toml needs config_path"
        )
    endpoints = [dict(e, host=_private(e["host"], vector)) for e in vector["endpoints"]]
    image = case.image()
    last = endpoints[-1]
    case.world.sim.push(image, f"{case.repo}:1", host=_bare(last["host"]))
    registry = _private(vector["registry"], vector)
    seen = _arrivals(case.world, vector)
    assert case.pull(case.ref("1", host=registry)) == image.config_digest

    tag_path = f"/{case.repo}/manifests/1"
    assert _runs(seen, tag_path) == [
        (*_origin(e["scheme"], e["host"]), e["path"] + tag_path)
        for e in endpoints
        if {"pull", "resolve"} <= set(e["capabilities"])
    ], case.journal_text()
    blob_path = f"/{case.repo}/blobs/{image.config_digest}"
    assert _runs(seen, blob_path) == [
        (*_origin(e["scheme"], e["host"]), e["path"] + blob_path) for e in endpoints
    ], case.journal_text()
    for endpoint in endpoints:
        _check_headers(case, endpoint, endpoints)


def _check_headers(
    case: Case, endpoint: dict[str, Any], endpoints: list[dict[str, Any]]
) -> None:
    """Requests to *endpoint* carry its ``header`` table and no other entry's."""
    # Go writes a header map in random order; the values of one name keep theirs.
    want = sorted(
        ((name.lower(), value) for name, value in endpoint["headers"]),
        key=lambda pair: pair[0],
    )
    others = {name.lower() for e in endpoints for name, _ in e["headers"]}
    origin = _origin(endpoint["scheme"], endpoint["host"])
    seen = [
        ex
        for ex in case.exchanges()
        if _origin(ex.scheme, ex.host) == origin
        and ex.path.startswith(endpoint["path"] + "/")
    ]
    assert seen
    for ex in seen:
        got = sorted(
            ((k.lower(), v) for k, v in ex.headers if k.lower() in others),
            key=lambda pair: pair[0],
        )
        assert got == want, ex.line()


class TestHostDirectories:
    """Vectors with their own host directory, or none at all."""

    @pytest.fixture
    def extra_setup(self, world: World, profile: str) -> RegistrySetup:
        return _setup(world, profile, _vectors(default_dir=False))

    @pytest.mark.behavior(
        "HOST-008",
        "HOST-010",
        "HOST-011",
        "HOST-012",
        "HOST-013",
        "HOST-014",
        "CFG-004",
    )
    @pytest.mark.parametrize("vector", _vectors(default_dir=False))
    def test_endpoints_are_asked_as_the_vector_states(
        self, configured_case: Case, vector: dict[str, Any]
    ) -> None:
        """Tag and content requests go to the vector's endpoints, in order (HOST-010)."""
        _check_vector(configured_case, vector)


class TestDefaultDirectory:
    """``_default``: the directory of every registry without its own."""

    @pytest.fixture
    def extra_setup(self, world: World, profile: str) -> RegistrySetup:
        return _setup(world, profile, _vectors(default_dir=True))

    @pytest.mark.behavior("HOST-010", "CFG-004")
    @pytest.mark.parametrize("vector", _vectors(default_dir=True))
    def test_endpoints_are_asked_as_the_vector_states(
        self, configured_case: Case, vector: dict[str, Any]
    ) -> None:
        """A registry without a directory gets ``_default``'s hosts, then itself."""
        _check_vector(configured_case, vector)
