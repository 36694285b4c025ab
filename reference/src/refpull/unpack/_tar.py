"""Confined, streaming extraction of one OCI layer tar into a directory.

Safety rules (the reference is safe in every profile, see profiles.py):

* entry names and hardlink targets must be relative and free of ``..`` components, else
  :class:`~refpull.errors.UnsafePath` (containerd confines such names to the root instead;
  we refuse them, the stricter choice);
* no existing symlink is ever followed: every parent component is checked with ``lstat``
  (a symlinked parent -> ``UnsafePath``), files are created with ``O_EXCL|O_NOFOLLOW``
  after removing what was there, hardlinks are made without following;
* metadata (owner, mode, times) is applied through directory file descriptors opened
  from the root with ``O_NOFOLLOW`` for every component and ``*at`` calls that do not
  follow the last one; a directory whose path a later entry replaced (by a symlink, a
  file or a whiteout) gets no deferred metadata at all -- the class of containerd's
  CVE-2021-32760 (GHSA-c72p-9xmj-rx3w), where a chmod followed a symlink out of the root;
* symlinks are created as given: their targets are only ever interpreted inside the
  container, never by the extractor;
* device nodes are skipped and recorded in the returned notes (no privileges needed);
  FIFOs are created; ownership is applied only when running as root;
* the tree may share inodes with the parent snapshot (:mod:`refpull.unpack._linkfarm`): nothing
  is written or chmod'ed through an inherited inode -- entries are unlinked before they
  are created, and an inherited hardlink target is copied up first.

OCI whiteouts (image-spec ``layer.md``): ``.wh.<name>`` deletes ``<name>`` from the lower
layers; ``.wh..wh..opq`` empties its directory of everything not written by this layer.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refpull.errors import UnsafePath
from refpull.limits import LimitExceeded
from refpull.unpack._linkfarm import copy_up
from refpull.unpack._tarstream import TarStream

__all__ = ["ExtractResult", "extract_tar"]

_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


@dataclass
class ExtractResult:
    """What extraction did besides writing files."""

    notes: list[str] = field(default_factory=list)


def _clean(name: str, *, what: str = "entry") -> tuple[str, ...]:
    """Split a tar name into safe components, or raise UnsafePath."""
    if name.startswith("/"):
        raise UnsafePath(f"unsafe {what} path {name!r}: absolute", path=name)
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafePath(f"unsafe {what} path {name!r}: '..' component", path=name)
    return parts


def _ensure_parents(root: Path, parts: tuple[str, ...], name: str) -> Path:
    """Create missing parents of ``parts`` under root; refuse symlinked ones."""
    current = root
    for part in parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(
                f"unsafe entry path {name!r}: parent is a symlink", path=name
            )
        if not stat.S_ISDIR(st.st_mode):
            # A file where a directory is needed: the layer replaces it (like a dir entry).
            os.unlink(current)
            os.mkdir(current, 0o755)
    return current / parts[-1]


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A component that is gone, not a directory, or a symlink (O_NOFOLLOW gives ELOOP).
_REPLACED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


def _open_parent(root_fd: int, parts: tuple[str, ...]) -> int | None:
    """A descriptor of the directory holding ``parts[-1]``, walked from *root_fd*.

    Every component is opened with ``O_NOFOLLOW|O_DIRECTORY`` relative to the one
    before, so no symlink anywhere on the path is followed. None when a component
    is missing, a symlink or not a directory (the caller then applies nothing).
    """
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError as exc:
        os.close(fd)
        if exc.errno in _REPLACED:
            return None
        raise
    return fd


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class _Extractor:
    def __init__(
        self, root: Path, stream: TarStream, max_bytes: tuple[int, str] | None
    ) -> None:
        self.root = root
        self.stream = stream
        # Bytes regular files may hold together (sparse members count their holes).
        self.max_bytes = max_bytes
        self.file_bytes = 0
        self.result = ExtractResult()
        self.written: set[tuple[str, ...]] = set()
        # Inherited entries this layer copied up (refpull.unpack._linkfarm): now private.
        self.private: set[tuple[str, ...]] = set()
        self.dir_meta: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []
        self.is_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.root_fd = os.open(root, _DIR_FLAGS)

    def close(self) -> None:
        os.close(self.root_fd)

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _clean(member.name)
        if not parts:
            return  # the root directory itself: nothing to create
        base = parts[-1]
        if base.startswith(_WHITEOUT):
            self.whiteout(parts, member.name)
            return
        path = _ensure_parents(self.root, parts, member.name)
        # Every ancestor counts as written: an opaque marker must not remove them.
        self.written.update(parts[:n] for n in range(1, len(parts) + 1))
        if member.isdir():
            if not path.is_dir() or path.is_symlink():
                _remove(path)
                os.mkdir(path, 0o700)
            self.dir_meta.append((parts, member))
            return
        _remove(path)
        if member.isreg():
            self.regular(tar, member, path)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            self.hardlink(member, path)
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        elif member.ischr() or member.isblk():
            self.result.notes.append(f"skipped device node {member.name!r}")
            return
        else:
            self.result.notes.append(
                f"skipped entry {member.name!r} of type {member.type!r}"
            )
            return
        self.metadata(parts, member)

    def regular(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path
    ) -> None:
        self.file_bytes += member.size
        if self.max_bytes is not None and self.file_bytes > self.max_bytes[0]:
            bound, flag = self.max_bytes
            what = (
                f"{member.name!r} bringing the layer's files to {self.file_bytes} bytes"
            )
            raise LimitExceeded(what, limit=bound, flag=flag)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            if member.sparse is None and self.stream.tell() == member.offset_data:
                # Plain member at the stream position: copy straight to the file.
                if self.stream.copy_to(fd, member.size) != member.size:
                    # tarfile's own wording for a member cut short.
                    raise tarfile.ReadError("unexpected end of data")
                return
            src = tar.extractfile(member)  # GNU sparse members: tarfile's reader
            if src is not None:
                shutil.copyfileobj(src, out, 1 << 20)

    def hardlink(self, member: tarfile.TarInfo, path: Path) -> None:
        target_parts = _clean(member.linkname, what="hardlink target")
        if not target_parts:
            raise UnsafePath(f"hardlink {member.name!r} to the root", path=member.name)
        current = self.root
        for part in target_parts[:-1]:
            current = current / part
            if os.path.islink(current) or not current.is_dir():
                raise UnsafePath(
                    f"hardlink target {member.linkname!r} leaves the root",
                    path=member.name,
                )
        source = current / target_parts[-1]
        if not os.path.lexists(source) or (
            os.path.isdir(source) and not source.is_symlink()
        ):
            raise UnsafePath(
                f"hardlink target {member.linkname!r} missing", path=member.name
            )
        if target_parts not in self.written and target_parts not in self.private:
            # The target may be the parent snapshot's inode: the link's metadata
            # would be applied to it, so the child gets its own copy first.
            copy_up(source)
            self.private.add(target_parts)
        os.link(source, path, follow_symlinks=False)

    def metadata(self, parts: tuple[str, ...], member: tarfile.TarInfo) -> None:
        """Apply owner, mode and times to the entry at *parts*, following no symlink.

        Skipped when a component on the way is no longer a directory, or when a
        directory entry's path now holds something else (a later entry replaced it).
        """
        parent = _open_parent(self.root_fd, parts)
        if parent is None:
            return
        name = parts[-1]
        try:
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return
            if member.isdir() and not stat.S_ISDIR(st.st_mode):
                return  # replaced after it was declared: its metadata is void
            if self.is_root:
                os.chown(
                    name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False
                )
            # Never chmod a symlink (a hard link to a symlink entry is one): chmod
            # follows the last component, and the parent fd pins all the others.
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(name, member.mode & 0o7777, dir_fd=parent)
            times = (member.mtime, member.mtime)
            os.utime(name, times, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)

    def whiteout(self, parts: tuple[str, ...], name: str) -> None:
        parent = _ensure_parents(self.root, parts, name).parent
        base = parts[-1]
        if base == _OPAQUE:
            prefix = parts[:-1]
            for child in sorted(os.listdir(parent)):
                if (*prefix, child) not in self.written:
                    _remove(parent / child)
            return
        target = base[len(_WHITEOUT) :]
        if target in ("", ".", ".."):
            raise UnsafePath(f"unsafe whiteout {name!r}", path=name)
        _remove(parent / target)

    def finish(self) -> None:
        # Directory modes and times last, deepest first, so read-only dirs can be
        # filled; at equal depth in archive order, so a later declaration wins.
        for parts, member in sorted(self.dir_meta, key=lambda d: -len(d[0])):
            self.metadata(parts, member)


def extract_tar(
    stream: Any, root: Path, *, max_bytes: tuple[int, str] | None = None
) -> ExtractResult:
    """Extract the uncompressed tar *stream* (anything with ``read``) into *root*.

    Args:
        stream: the tar, uncompressed.
        root: the directory to fill.
        max_bytes: ``(bound, flag)``: regular files (sparse ones at their full size)
            may hold at most *bound* bytes together (PULL-014, a disk bomb).

    Returns:
        Notes about skipped entries.

    Raises:
        UnsafePath: an entry would write outside *root*.
        LimitExceeded: the files would hold more than *max_bytes*.
        tarfile.TarError, OSError: malformed archives or file system errors.
    """
    # TarStream keeps tarfile's stream-mode contract (forward only) with fewer copies.
    source = TarStream(stream)
    extractor = _Extractor(root, source, max_bytes)
    try:
        with tarfile.TarFile(fileobj=source, mode="r", errorlevel=2) as tar:
            for member in tar:
                extractor.entry(tar, member)
        extractor.finish()
    finally:
        extractor.close()
    return extractor.result
