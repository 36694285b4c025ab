"""``refpull serve``: the reference as a CRI endpoint on a unix socket.

``refpull serve --listen unix:///path.sock --root DIR [--config FILE] [--profile P]``
serves ``runtime.v1alpha2`` (and ``runtime.v1`` for containerd-1.6, CRI-007)
ImageService and RuntimeService.Version. Start-up recovers from a crash first (ingests,
unfinished snapshots, unreferenced content), then prints the socket path on stdout. SIGTERM
or SIGINT stops it cleanly (exit 0): running pulls are cancelled and their partial
downloads removed. Exit 2: unusable command input. Exit 1: start-up failed, e.g. another
server answers on the socket (a stale socket file is replaced). Proxy variables are read
here, and only here (XPORT-001).

Limits: a PullImage stops when its caller cancels or its deadline passes, after
``--pull-timeout`` seconds, or when a transfer stays below ``--min-rate`` bytes/s over
``--min-rate-window`` seconds; at most ``--max-concurrent-pulls`` pulls run at once
(more are refused with RESOURCE_EXHAUSTED) and other RPCs always have workers.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from refpull.cli._common import (
    InputError,
    checked_root,
    checked_socket,
    load_config_arg,
    proxy_environ,
)
from refpull.cli._limits import add_limit_arguments, limits_from_args
from refpull.cri.grpc_server import serve
from refpull.errors import RefpullError
from refpull.limits import add_content_limit_arguments, content_limits_from_args
from refpull.profiles import PROFILES, get_profile

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register the ``serve`` sub-command.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "serve",
        help="serve the CRI ImageService on a unix socket",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--listen", metavar="unix:///PATH", required=True, help="socket to serve on"
    )
    parser.add_argument(
        "--root", metavar="DIR", required=True, help="records, content, snapshots"
    )
    parser.add_argument("--config", metavar="FILE", help="containerd config.toml")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="containerd-1.6",
        help="runtime generation to model (default: containerd-1.6)",
    )
    add_limit_arguments(parser)
    add_content_limit_arguments(parser)
    parser.add_argument(
        "--max-concurrent-pulls",
        metavar="N",
        type=int,
        default=64,
        help="PullImage calls served at once; more get RESOURCE_EXHAUSTED (default: 64)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``refpull serve`` until SIGTERM/SIGINT.

    Args:
        args: the namespace built by the parser from :func:`add_parser`.

    Returns:
        0 after a clean stop, 1 when start-up fails, 2 for unusable input.
    """
    try:
        profile = get_profile(args.profile)
        config = load_config_arg(args.config, profile)
        socket_path = checked_socket(args.listen)
        root = checked_root(args.root)
    except InputError as exc:
        print(f"refpull serve: error: {exc}", file=sys.stderr)
        return 2
    environ = proxy_environ()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        try:
            server = serve(
                socket_path,
                root=root,
                config=config,
                profile=profile,
                environ=environ,
                limits=limits_from_args(args),
                content_limits=content_limits_from_args(args),
                max_pulls=args.max_concurrent_pulls,
            )
        except (RefpullError, OSError, RuntimeError) as exc:
            # RuntimeError: gRPC could not bind the socket (its message says which).
            print(f"refpull serve: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        service = server.service
        for problem in service.startup_problems if service else ():
            print(f"refpull serve: not ready: {problem}", file=sys.stderr)
        print(socket_path, flush=True)
        while not stop.wait(0.5):
            pass
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
