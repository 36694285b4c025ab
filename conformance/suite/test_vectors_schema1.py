"""Schema1 golden vectors: the converted image is the one the real runtime produced.

``fixtures/vectors/schema1/*.json`` hold unsigned schema1 manifests, their blobs and,
per profile, the image ID and config digest a pull produced: containerd 1.6.20 for
``containerd-1.6``, the containerd built from the seed's commit for ``seed`` and, in
the ``case-*`` vectors test_schema1.py builds, containerd 1.7.34 for ``containerd-1.7``.
The expectation is read from the vector, never computed here (issue 11 item 2).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from cri_conformance.catalog import fixtures_dir
from cri_conformance.scenario import Case

SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
VECTORS = sorted((fixtures_dir() / "vectors" / "schema1").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector


@pytest.mark.behavior("S1-006", "S1-007", "S1-008", "S1-009")
@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_schema1_vector_pulls_to_the_recorded_image(case: Case, path: Path) -> None:
    """Image ID and fetched blobs are those the vector records."""
    vector = _load(path)
    expected = vector["expected"].get(case.profile)
    if expected is None:
        pytest.skip(f"not applicable: {path.name} records no {case.profile} result")
    sim = case.world.sim
    for digest, data in vector["blobs"].items():
        sim.push_blob(case.repo, base64.b64decode(data), digest=digest)
    manifest = vector["manifest"].encode("utf-8")
    # Served under the digest of its bytes and pulled by it (the runtimes recorded
    # it so); the repo digest is that digest, the image ID the recorded one.
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    sim.push_manifest(case.repo, digest, manifest, SCHEMA1)
    ref = case.ref(None, digest=digest)
    assert case.pull(ref) == expected["image_id"]
    info = case.status(ref)
    assert info is not None
    assert info.id == expected["image_id"]
    assert ref in info.repo_digests
    fetched = {
        ex.path.rsplit("/", 1)[-1]
        for ex in case.exchanges()
        if ex.method == "GET" and "/blobs/" in ex.path
    }
    assert fetched == set(vector["fetch"])
