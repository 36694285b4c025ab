"""The runtimes the suite knows how to build, as data.

A recipe names a source archive (as laid out in ``shared/upstream``), how its Go tree is
arranged, which binaries come out, and the version strings a release build stamps in
(the upstream Makefiles pass them with ``-ldflags -X``). Building is in ``build.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RECIPES", "Recipe", "get_recipe"]


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How one runtime is built from its source archive."""

    #: Runtime name as tox environments and ``--runtime`` use it (``containerd-1.7.34``).
    name: str
    #: Archive file name in the upstream directory.
    archive: str
    #: ``module``: a Go module with ``vendor/``; ``gopath``: pre-modules, built in GOPATH.
    layout: str
    #: Import path of the tree (for ``gopath``) or of the version package's module.
    go_package: str
    #: ``go build`` target, relative to the unpacked tree.
    main: str
    #: Name of the binary produced.
    binary: str
    #: Build tags.
    tags: tuple[str, ...]
    #: ``-X`` assignments a release build makes (package-relative name -> value).
    ldflags: tuple[tuple[str, str], ...] = ()
    #: C helpers built with ``make -C <dir>``: (dir, produced file relative to the tree).
    make_helpers: tuple[tuple[str, str], ...] = ()
    #: The profile this runtime is graded against by default.
    profile: str


_CTRD_TAGS = ("no_btrfs",)
_CRIO_TAGS = (
    "containers_image_ostree_stub",
    "containers_image_openpgp",
    "exclude_graphdriver_btrfs",
    "btrfs_noversion",
    "exclude_graphdriver_devicemapper",
)


def _containerd(version: str, commit: str, module: str, profile: str) -> Recipe:
    return Recipe(
        name=f"containerd-{version}",
        archive=f"containerd-{version}.tar.xz",
        layout="module",
        go_package=module,
        main="./cmd/containerd",
        binary="containerd",
        tags=_CTRD_TAGS,
        ldflags=(
            (f"{module}/version.Version", f"v{version}"),
            (f"{module}/version.Revision", commit),
            (f"{module}/version.Package", "github.com/containerd/containerd"),
        ),
        profile=profile,
    )


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="containerd-seed",
            archive="containerd-cri-ab6701bd.tar.xz",
            layout="gopath",
            go_package="github.com/containerd/cri",
            main="./cmd/containerd",
            binary="containerd",
            tags=_CTRD_TAGS,
            profile="seed",
        ),
        _containerd(
            "1.7.34",
            "fb9028b920d254bdb73fe998a2ef75a393c88686",
            "github.com/containerd/containerd",
            "containerd-1.7",
        ),
        _containerd(
            "2.0.11",
            "ea0b49555e46d04b7f7d844d1920f69d095e1df2",
            "github.com/containerd/containerd/v2",
            "containerd-2.0",
        ),
        _containerd(
            "2.3.4",
            "db8809540e1a7a9da5d518876894933ff55692ab",
            "github.com/containerd/containerd/v2",
            "containerd-2.3",
        ),
        Recipe(
            name="crio-1.36.3",
            archive="cri-o-1.36.3.tar.xz",
            layout="module",
            go_package="github.com/cri-o/cri-o",
            main="./cmd/crio",
            binary="crio",
            tags=_CRIO_TAGS,
            ldflags=(
                (
                    "github.com/cri-o/cri-o/internal/version.buildCommit",
                    "b24632ab44955fa84685640d4177f3c554e9f69c",
                ),
            ),
            make_helpers=(("pinns", "bin/pinns"),),
            profile="crio-1.36",
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    """The recipe called *name*; ``KeyError`` names the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        known = ", ".join(sorted(RECIPES))
        raise KeyError(f"unknown runtime {name!r} (known: {known})") from None
