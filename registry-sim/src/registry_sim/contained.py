"""Run a containers/image tool (skopeo) so that it writes nothing outside one directory.

Interop tests run skopeo against the simulator. Left to its defaults it writes
``$HOME`` and XDG files, large temporary files in ``/var/tmp``, and -- as root, with no
flag or variable to move it -- the blob-info cache in ``/var/lib/containers/cache``
(containers/image ``pkg/blobinfocache`` ``blobInfoCacheDir``). :func:`contained_command`
points every path it can at private directories under *home* and, for root, runs the
tool in a private mount namespace where a directory under *home* is mounted over
``/var/lib``: the cache lands in *home* (and persists across calls with the same
*home*, as a test's pushes and copies expect), and nothing else there is needed.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ContainedError", "contained_command"]

#: Where containers/image keeps root's state; covered, in the tool's namespace only.
_COVERED = "/var/lib"
# Runs as root inside the new mount namespace, then becomes the tool ("$@").
_SCRIPT = (
    'mount --bind "$CONTAINED_VAR_LIB" "$CONTAINED_COVERED" || exit 125; exec "$@"'
)


class ContainedError(RuntimeError):
    """The tool cannot be kept from writing global state on this machine."""


@functools.cache
def _can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "true"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


def contained_command(
    argv: Sequence[str], home: Path, env: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that keep *argv* inside *home*.

    Args:
        argv: the tool and its arguments (``["skopeo", "copy", ...]``); global
            ``--tmpdir`` and ``--registries.d`` options are added after the tool.
        home: a private directory (the test's temp dir); subdirectories are created.
        env: extra environment (proxy variables, ``SSL_CERT_FILE``).

    Returns:
        ``(argv, environ)`` for :func:`subprocess.run`.

    Raises:
        ContainedError: running as root where a private mount namespace cannot be
            made (``unshare`` missing or not permitted).
    """
    dirs = {
        name: home / f".contained-{name}"
        for name in ("run", "config", "data", "cache", "tmp", "registries.d", "var-lib")
    }
    for path in dirs.values():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    environ = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(dirs["run"]),
        "XDG_CONFIG_HOME": str(dirs["config"]),
        "XDG_DATA_HOME": str(dirs["data"]),
        "XDG_CACHE_HOME": str(dirs["cache"]),
        "TMPDIR": str(dirs["tmp"]),
        **(env or {}),
    }
    tool, *rest = argv
    command = [
        tool,
        "--tmpdir",
        str(dirs["tmp"]),
        "--registries.d",
        str(dirs["registries.d"]),
        *rest,
    ]
    if os.geteuid() != 0:
        return command, environ  # the cache goes to $XDG_DATA_HOME: inside home
    if not _can_unshare():
        raise ContainedError(
            "as root, skopeo writes /var/lib/containers/cache and no option moves "
            "it; run as a normal user or allow unshare --mount (CAP_SYS_ADMIN)"
        )
    unshare = shutil.which("unshare") or "unshare"
    environ["CONTAINED_VAR_LIB"] = str(dirs["var-lib"])
    environ["CONTAINED_COVERED"] = _COVERED
    wrapped = [unshare, "--mount", "--propagation", "private", "sh", "-c", _SCRIPT]
    return [*wrapped, "sh", *command], environ
