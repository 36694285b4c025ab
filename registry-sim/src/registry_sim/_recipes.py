"""JSON image recipes (``fixtures/images/*.json``) → built images.

A recipe is data, so a catalog case can name an image by file. Shapes::

    {"kind": "schema2" | "oci", "config": {...}, "layers": [LAYER, ...],
     "broken": [{"digest_mismatch": 0} | {"wrong_size": 0} | {"wrong_diff_ids": true}
                | {"media_type": "..."} | {"config_media_type": "..."}]}
    {"kind": "docker-list" | "oci-index",
     "manifests": [{"image": RECIPE, "platform": {...} | null}, ...]}
    {"kind": "schema1-signed" | "schema1-unsigned", "name": "...", "tag": "...",
     "config": {...}, "entries": [{"layer": LAYER | null, "throwaway": bool,
     "size": int, "created_by": "..."}], "malformed": KIND, "extra": {...}}

    LAYER = {"files": {PATH: TEXT | FILE}, "compression": "gzip", "mtime": 0}
          | {"random": {"size": N, "seed": S}, "compression": "none"}
          | {"hostile": NAME} | {"empty_gzip": true}
    FILE  = {"type": "file", "text": "...", "base64": "...", "mode": 420}
          | {"type": "dir"} | {"type": "symlink" | "hardlink", "target": "..."}
          | {"type": "whiteout"} | {"type": "opaque"}

A platform entry absent means "from the image config"; ``null`` means no field.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from registry_sim._image import Image
from registry_sim._image_config import Config, Platform, RecipeError
from registry_sim._index import Index
from registry_sim._layers import Compression, FileSpec, Layer
from registry_sim._schema1 import MALFORMED_KINDS, Malformed, Schema1, Schema1Entry

__all__ = ["build_recipe"]

_COMPRESSIONS = ("gzip", "none", "zstd")


def _file(spec: Any) -> bytes | FileSpec:
    if isinstance(spec, str):
        return spec.encode()
    if not isinstance(spec, dict):
        raise RecipeError(f"bad file spec {spec!r}")
    kind = spec.get("type", "file")
    if kind == "file":
        data = (
            base64.b64decode(spec["base64"])
            if "base64" in spec
            else spec.get("text", "").encode()
        )
        return FileSpec.file(data, mode=int(spec.get("mode", 0o644)))
    if kind == "dir":
        return FileSpec.dir(mode=int(spec.get("mode", 0o755)))
    if kind in ("symlink", "hardlink"):
        maker = FileSpec.symlink if kind == "symlink" else FileSpec.hardlink
        return maker(str(spec["target"]))
    if kind in ("whiteout", "opaque"):
        return FileSpec.whiteout() if kind == "whiteout" else FileSpec.opaque()
    raise RecipeError(f"unknown file type {kind!r}")


def _layer(spec: Any, directory: Path | None) -> Layer:
    if not isinstance(spec, dict):
        raise RecipeError(f"bad layer spec {spec!r}")
    compression = spec.get("compression", "gzip")
    if compression not in _COMPRESSIONS:
        raise RecipeError(f"unknown compression {compression!r}")
    comp = cast(Compression, compression)
    if "files" in spec:
        files = {path: _file(v) for path, v in spec["files"].items()}
        return Layer.from_files(files, comp, int(spec.get("mtime", 0)))
    if "random" in spec:
        rnd = spec["random"]
        return Layer.random(
            int(rnd["size"]), rnd["seed"], compression=comp, directory=directory
        )
    if "hostile" in spec:
        return Layer.hostile(str(spec["hostile"]), comp)
    if spec.get("empty_gzip"):
        return Layer.empty_gzip()
    raise RecipeError(f"layer spec names no content: {spec!r}")


def _config(spec: Any, nonce: str | None) -> Config:
    spec = dict(spec or {})
    for key in ("env", "cmd", "entrypoint"):
        if key in spec:
            spec[key] = tuple(spec[key])
    try:
        config = Config(**spec)
    except TypeError as exc:
        raise RecipeError(f"bad config: {exc}") from None
    return config if nonce is None else replace(config, nonce=nonce)


def _broken(image: Image, changes: list[dict[str, Any]]) -> Image:
    for change in changes:
        if "digest_mismatch" in change:
            image = image.with_digest_mismatch(change["digest_mismatch"])
        elif "wrong_size" in change:
            image = image.with_wrong_size(change["wrong_size"])
        elif change.get("wrong_diff_ids"):
            image = image.with_wrong_diff_ids()
        elif "media_type" in change:
            image = image.with_media_type(str(change["media_type"]))
        elif "config_media_type" in change:
            image = image.with_config_media_type(str(change["config_media_type"]))
        else:
            raise RecipeError(f"unknown breakage {change!r}")
    return image


def _image(recipe: dict[str, Any], nonce: str | None, directory: Path | None) -> Image:
    layers = [_layer(spec, directory) for spec in recipe.get("layers", [])]
    config = _config(recipe.get("config"), nonce)
    build = Image.schema2 if recipe["kind"] == "schema2" else Image.oci
    return _broken(build(layers, config), list(recipe.get("broken", [])))


def _index(recipe: dict[str, Any], nonce: str | None, directory: Path | None) -> Index:
    entries: list[Image | Index | tuple[Image | Index, Platform | None]] = []
    for item in recipe.get("manifests", []):
        child = build_recipe(item["image"], nonce=nonce, directory=directory)
        if isinstance(child, Schema1):
            raise RecipeError("an index cannot hold a schema1 manifest")
        if "platform" not in item:
            entries.append(child)
            continue
        plat = item["platform"]
        platform = (
            None
            if plat is None
            else Platform(
                os=plat.get("os", "linux"),
                architecture=plat.get("architecture", "amd64"),
                variant=plat.get("variant"),
                os_version=plat.get("os.version"),
                os_features=tuple(plat.get("os.features", ())),
            )
        )
        entries.append((child, platform))
    if recipe["kind"] == "docker-list":
        return Index.docker_list(entries)
    return Index.oci(entries, annotations=recipe.get("annotations"))


def _schema1(
    recipe: dict[str, Any], nonce: str | None, directory: Path | None
) -> Schema1:
    entries = [
        Schema1Entry(
            layer=None if e.get("layer") is None else _layer(e["layer"], directory),
            throwaway=e.get("throwaway"),
            size=e.get("size"),
            created_by=e.get("created_by", ""),
            extra=e.get("extra"),
        )
        for e in recipe.get("entries", [])
    ]
    common: dict[str, Any] = {
        "name": recipe.get("name", "test/schema1"),
        "tag": recipe.get("tag", "latest"),
        "config": _config(recipe.get("config"), nonce),
        "extra": recipe.get("extra"),
    }
    if recipe["kind"] == "schema1-unsigned":
        return Schema1.unsigned(entries, **common)
    built = Schema1.signed(entries, **common)
    malformed = recipe.get("malformed")
    if malformed is None:
        return built
    if malformed not in MALFORMED_KINDS:
        raise RecipeError(f"unknown schema1 malformation {malformed!r}")
    return built.malformed(cast(Malformed, malformed))


def build_recipe(
    recipe: Any, *, nonce: str | None = None, directory: Path | None = None
) -> Image | Index | Schema1:
    """Build a parsed recipe (see the module docstring).

    Args:
        recipe: the decoded JSON object.
        nonce: per-test nonce for every config.
        directory: where large random layers go.

    Returns:
        The built object.

    Raises:
        RecipeError: the recipe is malformed.
    """
    if not isinstance(recipe, dict) or "kind" not in recipe:
        raise RecipeError("a recipe is an object with a 'kind'")
    try:
        kind = recipe["kind"]
        if kind in ("schema2", "oci"):
            return _image(recipe, nonce, directory)
        if kind in ("docker-list", "oci-index"):
            return _index(recipe, nonce, directory)
        if kind in ("schema1-signed", "schema1-unsigned"):
            return _schema1(recipe, nonce, directory)
    except (KeyError, TypeError, IndexError) as exc:
        raise RecipeError(f"bad recipe: {exc!r}") from None
    raise RecipeError(f"unknown recipe kind {kind!r}")
