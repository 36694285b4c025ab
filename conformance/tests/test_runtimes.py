"""The runtime build cache: reuse, no partial entries, one-line errors (no real Go here).

A stand-in ``go`` script plays the compiler: it records its arguments and writes the
``-o`` file, or fails when the tree asks it to, so the cache logic is shown without a
toolchain.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import pytest

from cri_conformance.runtimes import RECIPES, BuildError, build, get_recipe
from cri_conformance.runtimes.build import find_cached

FAKE_GO = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/../go.log"
[ -e FAIL ] && { echo "compile error" >&2; exit 1; }
while [ $# -gt 0 ]; do
  if [ "$1" = "-o" ]; then echo binary > "$2"; fi
  shift
done
"""


def _archive(path: Path, top: str, *, fail: bool = False) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        files = {f"{top}/cmd/containerd/main.go": b"package main\n"}
        if fail:
            files[f"{top}/FAIL"] = b""
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _quiet(_text: str) -> None:
    pass


@pytest.fixture
def fake_go(tmp_path: Path) -> tuple[str, Path]:
    go = tmp_path / "fakebin" / "go"
    go.parent.mkdir()
    go.write_text(FAKE_GO)
    go.chmod(0o755)
    return str(go), tmp_path / "go.log"


def test_every_graded_runtime_has_a_recipe_with_a_profile() -> None:
    assert sorted(RECIPES) == [
        "containerd-1.7.34",
        "containerd-2.0.11",
        "containerd-2.3.4",
        "containerd-seed",
        "crio-1.36.3",
    ]
    assert get_recipe("containerd-2.3.4").profile == "containerd-2.3"


def test_an_unknown_runtime_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"known: containerd-1\.7\.34"):
        get_recipe("containerd-9")


def test_a_build_is_stamped_then_reused(
    tmp_path: Path, fake_go: tuple[str, Path]
) -> None:
    go, log = fake_go
    recipe = get_recipe("containerd-1.7.34")
    _archive(tmp_path / recipe.archive, "containerd-1.7.34")
    cache = tmp_path / "cache"
    first = build(recipe, upstream=tmp_path, cache_dir=cache, go=go, progress=_quiet)
    assert not first.cached
    assert first.binary.read_text() == "binary\n"
    assert "-X github.com/containerd/containerd/version.Version=v1.7.34" in (
        log.read_text()
    )
    again = build(recipe, upstream=tmp_path, cache_dir=cache, go=go, progress=_quiet)
    assert again.cached
    assert again.binary == first.binary
    assert log.read_text().count("build -tags") == 1


def test_a_cached_build_is_found_without_its_archive(
    tmp_path: Path, fake_go: tuple[str, Path]
) -> None:
    go, _ = fake_go
    recipe = get_recipe("containerd-2.0.11")
    _archive(tmp_path / recipe.archive, "containerd-2.0.11")
    cache = tmp_path / "cache"
    built = build(recipe, upstream=tmp_path, cache_dir=cache, go=go, progress=_quiet)
    assert find_cached(recipe, cache) == dataclasses.replace(built, cached=True)
    assert build(recipe, cache_dir=cache, go=go).binary == built.binary
    changed = dataclasses.replace(recipe, tags=("other",))
    assert find_cached(changed, cache) is None


def test_an_edit_deep_in_a_checkout_rebuilds_it(
    tmp_path: Path, fake_go: tuple[str, Path]
) -> None:
    go, log = fake_go
    recipe = get_recipe("containerd-2.3.4")
    checkout = tmp_path / "checkout"
    main_go = checkout / "cmd" / "containerd" / "main.go"
    main_go.parent.mkdir(parents=True)
    main_go.write_text("package main\n")
    cache = tmp_path / "cache"
    first = build(recipe, source=checkout, cache_dir=cache, go=go, progress=_quiet)
    assert build(recipe, source=checkout, cache_dir=cache, go=go).cached
    main_go.write_text("package main // edited\n")
    again = build(recipe, source=checkout, cache_dir=cache, go=go, progress=_quiet)
    assert not again.cached
    assert again.directory != first.directory
    assert log.read_text().count("build -tags") == 2


def test_an_entry_from_before_recipe_keys_is_stamped_when_reused(
    tmp_path: Path, fake_go: tuple[str, Path]
) -> None:
    go, _ = fake_go
    recipe = get_recipe("containerd-1.7.34")
    _archive(tmp_path / recipe.archive, "containerd-1.7.34")
    cache = tmp_path / "cache"
    built = build(recipe, upstream=tmp_path, cache_dir=cache, go=go, progress=_quiet)
    meta = built.directory / "build.json"
    old = json.loads(meta.read_text())
    del old["recipe"]
    meta.write_text(json.dumps(old))
    assert find_cached(recipe, cache) is None
    build(recipe, upstream=tmp_path, cache_dir=cache, go=go, progress=_quiet)
    assert find_cached(recipe, cache) == dataclasses.replace(built, cached=True)


def test_a_failed_build_leaves_no_cache_entry(
    tmp_path: Path, fake_go: tuple[str, Path]
) -> None:
    go, _ = fake_go
    recipe = get_recipe("containerd-2.3.4")
    _archive(tmp_path / recipe.archive, "containerd-2.3.4", fail=True)
    cache = tmp_path / "cache"
    with pytest.raises(BuildError, match="go build failed"):
        build(recipe, upstream=tmp_path, cache_dir=cache, go=go, progress=_quiet)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_a_missing_archive_says_which_and_where(tmp_path: Path) -> None:
    recipe = get_recipe("crio-1.36.3")
    with pytest.raises(BuildError, match=r"cri-o-1\.36\.3\.tar\.xz not found"):
        build(recipe, upstream=tmp_path, cache_dir=tmp_path / "c", go="go")
    with pytest.raises(BuildError, match="is not built yet: give --upstream"):
        build(recipe, cache_dir=tmp_path / "c", go="go")
