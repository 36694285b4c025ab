"""refpull pulls from Debian's docker-registry (distribution 2.8), a real peer.

Two configurations on loopback: htpasswd Basic auth, and token auth whose realm is
registry-sim's TokenServer (x5c-signed JWTs the registry verifies against the run's
CA). The image is copied in with skopeo from a registry-sim holding it, then pulled
by the reference with CRI-style credentials; both profiles.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import pytest

from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.pull.puller import Puller
from refpull.settings.config import parse_config
from refpull.settings.credentials import AuthConfig
from registry_sim.contained import contained_command
from registry_sim.images import Image, Layer
from registry_sim.server import RegistryServer, Router
from registry_sim.sim import RegistrySim
from registry_sim.tls import SimCA
from registry_sim.token_server import TokenServer

pytestmark = pytest.mark.interop

USER, PASSWORD = "kubelet", "pull-secret"
SERVICE, ISSUER = "registry.test", "refpull-interop"


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is missing: apt-get install -y {package}")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    url: str
    host_port: str
    image: Image


def _start(tmp: Path, auth_yaml: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    binary = _require("docker-registry", "docker-registry")
    port = _free_port()
    config = tmp / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: refpull-interop\n" + auth_yaml
    )
    log = tmp / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"docker-registry exited:\n{log.read_text()}")
        try:
            httpx.get(f"{url}/v2/", timeout=1)
            return proc, url, log
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"docker-registry did not start:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _copy_in(image: Image, dest: str, home: Path) -> None:
    """Copy *image* from a registry-sim into docker-registry with skopeo.

    skopeo writes only under *home* (no blob-info cache, config or temp file).
    """
    skopeo = _require("skopeo", "skopeo")
    with RegistrySim() as source:
        source.push(image, "t/app:1")
        argv, env = contained_command(
            [
                skopeo,
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                f"--dest-creds={USER}:{PASSWORD}",
                f"docker://{source.host_port}/t/app:1",
                f"docker://{dest}/t/app:1",
            ],
            home / "skopeo",
            {"NO_PROXY": "*"},
        )
        subprocess.run(
            argv,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )


def _image() -> Image:
    layers = [Layer.random(4096, seed=f"interop-{i}") for i in range(2)]
    return Image.schema2(layers, nonce="refpull-docker-registry")


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    tmp = tmp_path_factory.mktemp("htpasswd-registry")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp / "htpasswd").write_text(f"{USER}:{hashed}\n")
    auth = f"auth:\n  htpasswd:\n    realm: interop\n    path: {tmp / 'htpasswd'}\n"
    proc, url, _ = _start(tmp, auth)
    try:
        image = _image()
        _copy_in(image, url.removeprefix("http://"), tmp)
        yield Registry(url, url.removeprefix("http://"), image)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    tmp = tmp_path_factory.mktemp("token-registry")
    ca = SimCA(directory=tmp)
    server = TokenServer(
        signing=ca.signing_key(), users={USER: PASSWORD}, issuer=ISSUER, service=SERVICE
    )
    realm = RegistryServer(Router(default=server.handle)).start()
    auth = (
        f"auth:\n  token:\n    realm: {realm.url}/token\n    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n    rootcertbundle: {ca.write_ca(tmp / 'ca.pem')}\n"
    )
    proc, url, _ = _start(tmp, auth)
    try:
        image = _image()
        _copy_in(image, url.removeprefix("http://"), tmp)
        yield Registry(url, url.removeprefix("http://"), image)
    finally:
        _stop(proc)
        realm.close()
        ca.close()


PROFILES = pytest.mark.parametrize(
    "profile", [SEED, CONTAINERD_16], ids=["seed", "containerd-1.6"]
)


def _pull(tmp: Path, registry: Registry, profile: Profile) -> str:
    puller = Puller(root=tmp, config=parse_config("", profile), profile=profile)
    auth = AuthConfig(username=USER, password=PASSWORD)
    return puller.pull(f"{registry.host_port}/t/app:1", auth).image_id


@pytest.mark.behavior("CHAL-006", "AUTH-001")
@PROFILES
def test_reference_pulls_from_docker_registry_with_htpasswd(
    tmp_path: Path, htpasswd_registry: Registry, profile: Profile
) -> None:
    """Basic auth against distribution's htpasswd: the pull returns the image ID."""
    assert _pull(tmp_path, htpasswd_registry, profile) == (
        htpasswd_registry.image.config_digest
    )


@pytest.mark.behavior("TOKEN-003", "TOKEN-004", "CHAL-003")
@PROFILES
def test_reference_pulls_from_docker_registry_with_our_token_server(
    tmp_path: Path, token_registry: Registry, profile: Profile
) -> None:
    """Bearer auth with our realm: distribution accepts the tokens the flow obtains."""
    assert (
        _pull(tmp_path, token_registry, profile) == token_registry.image.config_digest
    )
