"""Cheap child snapshots: a parent's tree rebuilt as directories plus hard links.

A child snapshot starts as its parent's tree. Copying every file costs the whole
image size again for every layer (a 4-layer, 512 MiB image copied 768 MiB), so the
child gets its *own* directories (created afresh, mode and times copied afterwards)
and *hard links* to the parent's files, symlinks and FIFOs.

Safety rule, kept by :mod:`refpull.unpack._tar`: an inode shared with the parent is never
written or re-stat'ed through the child. The extractor always unlinks a path before
it creates a new entry there (``O_EXCL`` files, fresh symlinks), directories are
never shared, and a layer hard link that targets an inherited file first replaces
that file with a private copy (:func:`copy_up`). Where a link is impossible (another
file system, the link-count limit, ``protected_hardlinks``) the file is copied.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid
from pathlib import Path

__all__ = ["copy_up", "link_tree"]

# Errors that mean "this inode cannot get another name here": copy instead.
_NO_LINK = frozenset({errno.EMLINK, errno.EXDEV, errno.EPERM, errno.EACCES})
# Ownership can be kept only with privileges (the extractor applies it only then too).
_IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _copy_entry(source: str, target: str, mode: int) -> None:
    """Give *target* a private inode equal to *source* (which it does not follow)."""
    if stat.S_ISFIFO(mode):
        os.mkfifo(target, 0o600)  # shutil refuses named pipes
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(source), target)
    else:
        shutil.copyfile(source, target)
    if _IS_ROOT:
        st = os.lstat(source)
        # Owner first: chown clears set-id bits, which copystat then restores.
        os.lchown(target, st.st_uid, st.st_gid)
    shutil.copystat(source, target, follow_symlinks=False)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        _copy_entry(source, target, os.lstat(source).st_mode)


def _copy_dir_meta(source: str, target: str, st: os.stat_result) -> None:
    if _IS_ROOT:
        os.lchown(target, st.st_uid, st.st_gid)
    shutil.copystat(source, target, follow_symlinks=False)


def link_tree(source: Path, target: Path) -> None:
    """Rebuild the tree *source* at *target* (which must not exist).

    Directories are new; every other entry is a hard link to the parent's inode
    (a copy where linking fails). Directory modes, times and extended attributes are
    copied after their contents, so read-only directories can be filled; ownership is
    kept when running as root.

    Args:
        source: the parent snapshot's root directory.
        target: the child's root directory, created here.

    Raises:
        OSError: file system errors.
    """
    # Iterative walk: deep trees must not hit the recursion limit.
    stack: list[tuple[str, str]] = [(os.fspath(source), os.fspath(target))]
    finished: list[tuple[str, str, os.stat_result]] = []
    while stack:
        src_dir, dst_dir = stack.pop()
        st = os.lstat(src_dir)
        os.mkdir(dst_dir, 0o700)
        finished.append((src_dir, dst_dir, st))
        with os.scandir(src_dir) as entries:
            for entry in entries:
                dst = os.path.join(dst_dir, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, dst))
                else:
                    _link_or_copy(entry.path, dst)
    # Deepest first: a directory's times change while its children are created.
    for src_dir, dst_dir, st in reversed(finished):
        _copy_dir_meta(src_dir, dst_dir, st)


def copy_up(path: Path) -> None:
    """Replace *path* (a non-directory, possibly shared with a parent) by a private copy.

    The copy is made beside the original and renamed over it, so the parent's inode
    is left exactly as it was and *path* never disappears half-way.

    Args:
        path: an existing non-directory entry inside the snapshot being built.

    Raises:
        OSError: file system errors.
    """
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode) or st.st_nlink < 2:
        return  # directories are never shared; a single link is already private
    tmp = path.with_name(f".refpull-copy-{uuid.uuid4().hex}")
    try:
        _copy_entry(os.fspath(path), os.fspath(tmp), st.st_mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
