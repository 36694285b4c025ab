"""skopeo (containers/image, Go) pulls our built images through token auth over TLS.

A real Go client checks what our unit tests can only assert about ourselves: the
SimCA chain, the token flow, blob digests, and the schema1 JWS payload rules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry_sim.auth import TokenAuth
from registry_sim.contained import contained_command
from registry_sim.images import Image, Index, Layer, Schema1, load_recipe
from registry_sim.sim import RegistrySim
from registry_sim.tls import SimCA
from registry_sim.token_server import TokenServer

pytestmark = pytest.mark.interop

SKOPEO = "/usr/bin/skopeo"
RECIPES = Path(__file__).resolve().parents[2] / "fixtures" / "images"


class Env:
    def __init__(self, sim: RegistrySim, cert_dir: Path, tokens: TokenServer) -> None:
        self.sim, self.cert_dir, self.tokens = sim, cert_dir, tokens

    def skopeo(self, *args: str, home: Path) -> subprocess.CompletedProcess[bytes]:
        # Nothing outside the test's temp dir: no cache, config or temp file.
        argv, env = contained_command(
            [SKOPEO, "--insecure-policy", *args],
            home,
            {"NO_PROXY": "localhost,127.0.0.1,::1"},
        )
        return subprocess.run(
            argv,
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )

    def ref(self, name: str) -> str:
        return f"docker://{self.sim.host_port}/{name}"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if shutil.which(SKOPEO) is None and not Path(SKOPEO).exists():
        pytest.fail(f"{SKOPEO} is missing: install the Debian package skopeo")
    tmp = tmp_path_factory.mktemp("skopeo")
    with SimCA(directory=tmp) as ca:
        tokens = TokenServer(signing=ca.signing_key(), users={"u": "pw"}, anonymous={})
        policy = TokenAuth(tokens, realm="https://localhost/token")
        sim = RegistrySim(tls=ca, auth=policy)
        # the port is bound at construction: point the realm at the token host
        port = sim.server.port
        policy.realm = f"https://localhost:{port}/token"
        sim.add_host(f"localhost:{port}", tokens)
        cert_dir = tmp / "certs"
        cert_dir.mkdir()
        ca.write_ca(cert_dir / "ca.crt")
        with sim.start():
            yield Env(sim, cert_dir, tokens)
            sim.check()


def _copy(env: Env, image: Image | Index | Schema1, name: str, tmp: Path) -> Path:
    env.sim.push(image, name)
    out = tmp / "out"
    result = env.skopeo(
        "copy",
        "--all",
        "--src-cert-dir",
        str(env.cert_dir),
        "--src-creds",
        "u:pw",
        env.ref(name),
        f"dir:{out}",
        home=tmp,
    )
    assert result.returncode == 0, result.stderr.decode()
    return out


def test_skopeo_inspect_raw_returns_the_built_manifest(
    env: Env, tmp_path: Path
) -> None:
    image = load_recipe(RECIPES / "busybox-like.json", nonce=tmp_path.name)
    env.sim.push(image, "t/inspect:1.0")
    result = env.skopeo(
        "inspect",
        "--raw",
        "--cert-dir",
        str(env.cert_dir),
        "--creds",
        "u:pw",
        env.ref("t/inspect:1.0"),
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == image.manifests[-1][1]
    assert any(r.user == "u" and r.authenticated for r in env.tokens.requests)


@pytest.mark.parametrize(
    "recipe", ["busybox-like.json", "oci-compressions.json", "multiarch.json"]
)
def test_skopeo_copies_built_images_and_their_digests_verify(
    env: Env, tmp_path: Path, recipe: str
) -> None:
    image = load_recipe(RECIPES / recipe, nonce=tmp_path.name)
    out = _copy(env, image, f"t/{recipe.removesuffix('.json')}:1", tmp_path)
    assert (out / "manifest.json").read_bytes() == image.manifests[-1][1]
    copied = {p.name for p in out.iterdir()}
    for digest in image.blobs:
        assert digest.split(":", 1)[1] in copied


def test_skopeo_refuses_a_layer_whose_bytes_do_not_match(
    env: Env, tmp_path: Path
) -> None:
    image = load_recipe(RECIPES / "schema2-digest-mismatch.json", nonce=tmp_path.name)
    env.sim.push(image, "t/mismatch:1")
    result = env.skopeo(
        "copy",
        "--src-cert-dir",
        str(env.cert_dir),
        "--src-creds",
        "u:pw",
        env.ref("t/mismatch:1"),
        f"dir:{tmp_path / 'out'}",
        home=tmp_path,
    )
    assert result.returncode != 0
    assert b"digest" in result.stderr.lower()


def test_skopeo_copies_a_signed_schema1_by_its_payload_digest(
    env: Env, tmp_path: Path
) -> None:
    """containers/image strips the libtrust signature to compute the digest (S1-002)."""
    image = load_recipe(RECIPES / "schema1-signed.json", nonce=tmp_path.name)
    assert isinstance(image, Schema1)
    stored = env.sim.push(image, "t/schema1:1.0")
    assert stored == image.digest
    out = _copy(env, image, f"t/schema1@{image.digest}", tmp_path)
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert manifest["schemaVersion"] == 1
    assert len(manifest["fsLayers"]) == len(image.entries)


def test_skopeo_pulls_over_mtls_with_a_client_certificate(tmp_path: Path) -> None:
    """mTLS: skopeo presents a client certificate from the run's CA and pulls."""
    if shutil.which(SKOPEO) is None and not Path(SKOPEO).exists():
        pytest.fail(f"{SKOPEO} is missing: install the Debian package skopeo")
    with SimCA(directory=tmp_path) as ca, RegistrySim(tls=ca, mtls=True) as sim:
        image = Image.schema2([Layer.random(2048, seed="mtls")], nonce="skopeo-mtls")
        sim.push(image, "t/mtls:1")
        client = sim.client_cert("skopeo")
        certs = tmp_path / "certs"
        certs.mkdir()
        ca.write_ca(certs / "ca.crt")
        shutil.copyfile(client.cert_path, certs / "client.cert")
        shutil.copyfile(client.key_path, certs / "client.key")
        env = Env(sim, certs, TokenServer(signing=ca.signing_key()))
        args = ["inspect", "--raw", "--cert-dir", str(certs), env.ref("t/mtls:1")]
        assert env.skopeo(*args, home=tmp_path).stdout == image.manifest
        # Without the client certificate the handshake is refused.
        bare = tmp_path / "bare"
        bare.mkdir()
        ca.write_ca(bare / "ca.crt")
        refused = env.skopeo(
            "inspect",
            "--raw",
            "--cert-dir",
            str(bare),
            env.ref("t/mtls:1"),
            home=tmp_path,
        )
        assert refused.returncode != 0
        assert any(ex.path == "/v2/t/mtls/manifests/1" for ex in sim.journal.exchanges)


def _global_state() -> dict[str, tuple[int, int]]:
    """Every file containers/image could write outside a test: path -> (mtime, size)."""
    home = Path.home()
    roots = [
        Path("/var/lib/containers"),
        Path("/run/containers"),
        home / ".config" / "containers",
        home / ".local" / "share" / "containers",
        home / ".cache" / "containers",
    ]
    seen = {}
    for root in roots:
        for path in [root, *root.rglob("*")] if root.exists() else []:
            info = path.lstat()
            seen[str(path)] = (info.st_mtime_ns, info.st_size)
    return seen


def test_skopeo_writes_nothing_outside_the_tests_temp_dir(
    env: Env, tmp_path: Path
) -> None:
    """Its blob-info cache, config and temp files all land under tmp_path."""
    before = _global_state()
    image = load_recipe(RECIPES / "busybox-like.json", nonce=tmp_path.name)
    _copy(env, image, "t/contained:1", tmp_path)
    assert _global_state() == before
    assert list(tmp_path.rglob("blob-info-cache-v1.boltdb")), "the cache went elsewhere"
