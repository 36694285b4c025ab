"""What the ``refpull`` sub-commands share: their input options and how they are read.

The environment is read here (proxy variables) and in the sub-commands' ``run``, and
nowhere below the command line (STYLE.md point 7).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from refpull.errors import RefpullError
from refpull.profiles import PROFILES, Profile, get_profile
from refpull.settings.config import RegistryConfig, default_config, load_config
from refpull.settings.credentials import AuthConfig

__all__ = [
    "PROXY_VARS",
    "InputError",
    "add_input_arguments",
    "checked_root",
    "checked_socket",
    "load_auth",
    "load_config_arg",
    "proxy_environ",
    "read_inputs",
]

#: Variables Go's ProxyFromEnvironment reads (behaviors.md XPORT-001).
PROXY_VARS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
)


class InputError(Exception):
    """The command's own input is unusable (exit status 2)."""


def add_input_arguments(parser: argparse.ArgumentParser, *, auth: bool = True) -> None:
    """Add ``--config``, ``--profile`` and (with *auth*) ``--auth-json``."""
    parser.add_argument("--config", metavar="FILE", help="containerd config.toml")
    if auth:
        parser.add_argument(
            "--auth-json",
            metavar="FILE|-",
            help="CRI AuthConfig as JSON (username, password, auth, server_address, "
            "identity_token), or - for stdin",
        )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="containerd-1.6",
        help="runtime generation to model (default: containerd-1.6)",
    )


def load_config_arg(path: str | None, profile: Profile) -> RegistryConfig:
    """The registry config of ``--config`` (the profile's default without one)."""
    if path is None:
        return default_config(profile)
    try:
        return load_config(path, profile)
    except RefpullError as exc:
        raise InputError(f"config {path}: {exc}") from exc


def load_auth(source: str | None) -> AuthConfig | None:
    """The AuthConfig of ``--auth-json`` (a file or ``-``); errors never quote it."""
    if source is None:
        return None
    try:
        text = sys.stdin.read() if source == "-" else _read_text(source)
        data = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read auth JSON {source}: {exc}") from exc
    except json.JSONDecodeError as exc:
        # The position, not the text: the document holds secrets.
        raise InputError(f"auth JSON {source} is not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise InputError(f"auth JSON {source} must be an object")
    try:
        return AuthConfig.from_mapping(data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"auth JSON {source}: {exc}") from exc


def read_inputs(
    args: argparse.Namespace,
) -> tuple[Profile, RegistryConfig, AuthConfig | None]:
    """Profile, registry config and AuthConfig named by the parsed arguments.

    Raises:
        InputError: a config or auth file that cannot be used.
    """
    profile = get_profile(args.profile)
    config = load_config_arg(args.config, profile)
    auth = load_auth(getattr(args, "auth_json", None))
    return profile, config, auth


def proxy_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The proxy variables of the process environment, to pass down explicitly."""
    env = os.environ if environ is None else environ
    return {name: env[name] for name in PROXY_VARS if name in env}


def checked_root(value: str) -> Path:
    """The ``--root`` directory, created when missing.

    Raises:
        InputError: it is not a directory, cannot be created, or is not writable.
    """
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise InputError(
            f"--root {value} is not a directory; pass a directory (created when missing)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"--root {value} cannot be created ({exc.strerror}); pass a writable "
            "directory"
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"--root {value} is not writable; pass a directory you own")
    return path


def checked_socket(listen: str) -> Path:
    """The socket path of ``--listen unix:///PATH``, whose directory must exist.

    Raises:
        InputError: not an absolute ``unix://`` path, or its directory is missing.
    """
    path = listen.removeprefix("unix://")
    if "://" in path:
        raise InputError(f"--listen {listen}: only unix:// sockets are served")
    if not path.startswith("/"):
        raise InputError(
            f"--listen {listen}: the socket path must be absolute (unix:///PATH)"
        )
    parent = Path(path).parent
    if not parent.is_dir():
        raise InputError(
            f"--listen {listen}: directory {parent} does not exist; create it "
            f"(mkdir -p {parent}) or choose another path"
        )
    return Path(path)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()
