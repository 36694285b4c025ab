"""The AuthConfig vectors of ``fixtures/vectors/auth.json``, replayed over CRI.

Each vector states what a registry sees for a CRI AuthConfig (``wire``: Basic with a
user, or nothing). Here the AuthConfig goes to the target in a real PullImage against a
loopback registry that challenges with Basic and records what comes back; the vector's
registry host ``127.0.0.1:5000`` is replaced by that registry's address, in the host
and in ``server_address`` alike. Vectors for other hosts stay unit-level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cri_conformance.catalog import fixtures_dir
from cri_conformance.scenario import Case
from cri_conformance.targets.base import TargetError
from registry_sim.auth import BasicAuth
from registry_sim.sim import RegistrySim

VECTOR_HOST = "127.0.0.1:5000"


def _vectors() -> list[Any]:
    path = Path(fixtures_dir()) / "vectors" / "auth.json"
    vectors = json.loads(path.read_text(encoding="utf-8"))
    return [
        pytest.param(v, id=v["id"], marks=pytest.mark.behavior(v["behavior"]))
        for v in vectors
        if v["input"]["host"] == VECTOR_HOST
    ]


def _substitute(value: Any, address: str) -> Any:
    if isinstance(value, str):
        return value.replace(VECTOR_HOST, address)
    if isinstance(value, dict):
        return {k: _substitute(v, address) for k, v in value.items()}
    return value


@pytest.mark.behavior("AUTH-001")
@pytest.mark.parametrize("vector", _vectors())
def test_auth_config_vector_reaches_the_registry_as_stated(
    case: Case, vector: dict[str, Any]
) -> None:
    """What the registry receives for an AuthConfig is what the vector says."""
    if vector.get("profile") not in (None, case.profile):
        pytest.skip(f"not applicable: a vector of the {vector['profile']} profile")
    registry = case.world.any_basic
    image = case.image()
    registry.push(image, f"{case.repo}:1")
    auth = _substitute(vector["input"]["auth"], registry.host_port)
    expect = vector["expect"]
    ref = case.ref("1", host=registry.host_port)
    try:
        case.pull(ref, auth=auth)
        pulled = True
    except TargetError:
        pulled = False
    users = [
        ex.auth[1] if ex.auth and ex.auth[0] == "basic" else None
        for ex in case.exchanges(host=registry.host_port)
    ]
    if expect["wire"] == "basic":
        assert pulled
        assert {u for u in users if u is not None} == {expect["username"]}
        _assert_secret_accepted(case, vector, expect["username"], expect["secret"])
    else:
        assert not pulled
        assert set(users) <= {None}


def _assert_secret_accepted(
    case: Case, vector: dict[str, Any], username: str, secret: str
) -> None:
    """The password on the wire is the vector's: a registry knowing only it admits the pull.

    The journal records who, never the password, so a second registry whose user
    table holds exactly the vector's credential decides. Secrets that are not plain
    printable ASCII (raw bytes from a decoded ``auth``) are left to the unit tests.
    """
    if not (secret.isascii() and secret.isprintable()):
        return
    strict = RegistrySim(auth=BasicAuth(users={username: secret}))
    strict.start()
    try:
        strict.push(case.image(salt="strict"), f"{case.repo}:1")
        auth = _substitute(vector["input"]["auth"], strict.host_port)
        case.pull(case.ref("1", host=strict.host_port), auth=auth)
    finally:
        strict.close()
