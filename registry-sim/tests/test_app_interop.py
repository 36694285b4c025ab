"""skopeo (Debian) pushes into and pulls from RegistryApp served on loopback."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry_sim.app import RegistryApp
from registry_sim.contained import contained_command
from registry_sim.journal import Journal
from registry_sim.server import RegistryServer
from registry_sim.storage import Storage

pytestmark = pytest.mark.interop

MT_OCI = "application/vnd.oci.image.manifest.v1+json"


def _put(root: Path, data: bytes) -> str:
    hexdigest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / hexdigest).write_bytes(data)
    return f"sha256:{hexdigest}"


def write_oci_layout(root: Path) -> tuple[bytes, list[bytes]]:
    """A one-layer OCI image layout tagged ``v1``; returns manifest and blobs."""
    (root / "blobs" / "sha256").mkdir(parents=True)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        entry = tarfile.TarInfo("hello.txt")
        entry.size = 6
        archive.addfile(entry, io.BytesIO(b"hello\n"))
    layer = gzip.compress(tar.getvalue(), mtime=0)
    diff_id = "sha256:" + hashlib.sha256(tar.getvalue()).hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
         "diff_ids": [diff_id]}}
    ).encode()  # fmt: skip
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MT_OCI,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _put(root, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _put(root, layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MT_OCI,
                "digest": _put(root, manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return manifest, [config, layer]


@dataclass(frozen=True)
class Skopeo:
    """skopeo, and the private directory it may write in (its temp dir)."""

    path: str
    home: Path


@pytest.fixture
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    found = shutil.which("skopeo")
    if found is None:
        pytest.fail("skopeo is not installed: install the Debian package 'skopeo'")
    return Skopeo(found, tmp_path_factory.mktemp("skopeo-home"))


@pytest.fixture
def served() -> Iterator[tuple[RegistryApp, Journal, str]]:
    journal = Journal()
    with Storage() as storage:
        app = RegistryApp(storage, name="interop")
        server = RegistryServer(app.handle, record=journal.record_request).start()
        try:
            yield app, journal, f"127.0.0.1:{server.port}"
        finally:
            server.close()
        app.check()


def run(skopeo: Skopeo, *args: str) -> str:
    # No proxy, and nothing written outside skopeo.home (no cache, config, temp file).
    argv, env = contained_command([skopeo.path, *args], skopeo.home, {"NO_PROXY": "*"})
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_skopeo_pushes_pulls_and_mounts(
    skopeo: Skopeo, served: tuple[RegistryApp, Journal, str], tmp_path: Path
) -> None:
    app, journal, registry = served
    manifest, blobs = write_oci_layout(tmp_path / "layout")
    run(
        skopeo, "copy", "--dest-tls-verify=false",
        f"oci:{tmp_path / 'layout'}:v1", f"docker://{registry}/test/app:v1",
    )  # fmt: skip
    assert app.storage.get_manifest("test/app", "v1") == (
        MT_OCI,
        manifest,
        "sha256:" + hashlib.sha256(manifest).hexdigest(),
    )
    raw = run(
        skopeo,
        "inspect",
        "--raw",
        "--tls-verify=false",
        f"docker://{registry}/test/app:v1",
    )
    assert raw.encode() == manifest
    run(
        skopeo, "copy", "--src-tls-verify=false",
        f"docker://{registry}/test/app:v1", f"dir:{tmp_path / 'out'}",
    )  # fmt: skip
    for blob in blobs:
        name = hashlib.sha256(blob).hexdigest()
        assert (tmp_path / "out" / name).read_bytes() == blob
    run(
        skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
        f"docker://{registry}/test/app:v1", f"docker://{registry}/other/copy:v2",
    )  # fmt: skip
    journal.assert_request(method="POST", path="/other/copy/blobs/uploads/", status=201)
    assert json.loads(run(skopeo, "list-tags", "--tls-verify=false",
                          f"docker://{registry}/other/copy"))["Tags"] == ["v2"]  # fmt: skip
