"""Deterministic image builders: configs, schema2/OCI manifests, indexes, schema1.

Every built object has the shape ``RegistrySim.push`` stores:

* ``blobs``: digest → content (bytes, or a Path for large layers);
* ``manifests``: ``(media_type, bytes)`` pairs, children first, the root last;
* ``digest``, ``media_type``, ``size`` of the root, and ``config_digest`` — the
  image ID a puller reports for schema2/OCI (behaviors.md CRI-001), ``None`` for
  indexes and schema1 (whose ID the puller synthesizes, S1-008);
* ``unverified``: digests whose stored content deliberately does not hash to the
  digest (store those with ``Storage.put_blob(..., digest=d)``).

Same recipe and same nonce give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from registry_sim._image import MT_DOCKER_CONFIG, MT_OCI_CONFIG, Image, layer_media_type
from registry_sim._image_config import NONCE_LABEL, Config, Platform, RecipeError
from registry_sim._index import Index
from registry_sim._layers import HOSTILE, FileSpec, Layer
from registry_sim._recipes import build_recipe
from registry_sim._schema1 import Schema1, Schema1Entry

__all__ = [
    "HOSTILE",
    "MT_DOCKER_CONFIG",
    "MT_OCI_CONFIG",
    "NONCE_LABEL",
    "Config",
    "FileSpec",
    "Image",
    "Index",
    "Layer",
    "Platform",
    "RecipeError",
    "Schema1",
    "Schema1Entry",
    "layer_media_type",
    "load_recipe",
]


def load_recipe(
    path: Path | str, *, nonce: str | None = None, directory: Path | None = None
) -> Image | Index | Schema1:
    """Build the image a JSON recipe under ``fixtures/images/`` describes.

    Args:
        path: the recipe file.
        nonce: per-test nonce put into every config (unique image IDs).
        directory: where large random layers are written.

    Returns:
        The built image, index or schema1 manifest.

    Raises:
        RecipeError: the recipe is malformed.
    """
    recipe = json.loads(Path(path).read_text())
    return build_recipe(recipe, nonce=nonce, directory=directory)
