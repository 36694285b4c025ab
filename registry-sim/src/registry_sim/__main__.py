"""``registry-sim serve``: run the simulated registry from a shell.

    registry-sim serve --listen 127.0.0.1:5000 --tls --ca-out ca.pem \\
        --auth token --user alice:secret --preload fixtures/images/busybox-like.json

prints where it listens (and the CA path), then serves until SIGINT or SIGTERM.
This module and the pytest plugin are the only places that read the command line.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import shutil
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from registry_sim.app import RegistryApp
from registry_sim.auth import BasicAuth, TokenAuth
from registry_sim.faults import load_faults
from registry_sim.images import load_recipe
from registry_sim.server import Handler, split_host_port
from registry_sim.sim import RegistrySim
from registry_sim.tls import SimCA
from registry_sim.token_server import TokenServer
from registry_sim.tokens import personalities
from registry_sim.wire import Request, Response

__all__ = ["build_parser", "main"]

_PREFIX = "registry-sim:"


class UsageError(Exception):
    """A flag combination the CLI refuses (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (every flag documented in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="registry-sim",
        description="A simulated OCI registry for conformance tests, on loopback.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_package_version()}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve a registry until SIGINT/SIGTERM",
        description="Serve a simulated registry. Prints its URL (and CA) first.",
    )
    add = serve.add_argument
    add(
        "--listen",
        default="127.0.0.1:5000",
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free port (default %(default)s)",
    )
    add(
        "--allow-non-loopback",
        action="store_true",
        help="allow --listen/--proxy-listen on a non-loopback address (unsafe)",
    )
    add("--tls", action="store_true", help="serve HTTPS with a fresh per-run CA")
    add(
        "--ca-out",
        type=Path,
        metavar="PATH",
        help="also write the CA certificate (PEM) to PATH",
    )
    add(
        "--cert-names",
        default="",
        metavar="NAMES",
        help="comma-separated extra DNS names/IPs for the server certificate",
    )
    add(
        "--mtls",
        action="store_true",
        help="require client certificates (implies --tls); a client certificate "
        "is issued and its paths printed",
    )
    add(
        "--auth",
        choices=("none", "basic", "token"),
        default="none",
        help="access control: none, HTTP Basic, or bearer tokens from a token "
        "server served at <url>/token (default %(default)s)",
    )
    add(
        "--user",
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="a user for --auth basic/token (repeatable)",
    )
    add(
        "--personality",
        default="standard",
        choices=sorted(personalities),
        help="token server personality for --auth token (default %(default)s)",
    )
    add(
        "--faults",
        type=Path,
        metavar="FILE",
        help="fault rules to load (.json or .toml, see registry_sim.faults)",
    )
    add(
        "--preload",
        action="append",
        default=[],
        metavar="RECIPE.json[=REPO:TAG]",
        help="build an image recipe and push it (default name <stem>:latest; "
        "repeatable)",
    )
    add(
        "--storage",
        type=Path,
        metavar="DIR",
        help="keep blobs in DIR instead of a temporary directory",
    )
    add(
        "--proxy-listen",
        metavar="HOST:PORT",
        help="also run the CONNECT proxy there (port 0 picks one)",
    )
    add(
        "--impersonate",
        action="append",
        default=[],
        metavar="NAME",
        help="a registry name the proxy serves from this registry, e.g. "
        "registry-1.docker.io (repeatable)",
    )
    add(
        "--sendfile",
        action="store_true",
        help="send blob bodies with sendfile(2) (least CPU) instead of 1 MiB "
        "copies, which measured faster on loopback (bench/registry_throughput.py)",
    )
    add(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="connections served at once, one thread each; more are closed at "
        "once (default: 256)",
    )
    add(
        "--head-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="longest a request head may take from its first byte (default: 10)",
    )
    add(
        "--log-requests",
        action="store_true",
        help="print one line per exchange (credentials redacted)",
    )
    return parser


def _address(text: str, *, allow_non_loopback: bool) -> tuple[str, int]:
    host, port = split_host_port(text)
    if port is None or not port.isdigit():
        raise UsageError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError as exc:
        raise UsageError(f"{host!r} is not an IP address") from exc
    if not loopback and not allow_non_loopback:
        raise UsageError(
            f"refusing to listen on non-loopback {host}; pass --allow-non-loopback"
        )
    return host, int(port)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cri-pull-conformance")
    except PackageNotFoundError:  # pragma: no cover - only without any install
        return "0+unknown"


def _users(specs: Sequence[str], auth: str) -> dict[str, str]:
    users = {}
    for spec in specs:
        user, sep, password = spec.partition(":")
        if not sep or not user:
            raise UsageError(f"--user {spec!r}: expected USER:PASSWORD")
        users[user] = password
    if auth == "basic" and not users:
        raise UsageError(
            "--auth basic without a --user lets nobody in; add --user USER:PASSWORD"
        )
    return users


def _with_token_endpoint(app: RegistryApp, tokens: TokenServer) -> Handler:
    """One host serving both the registry and, at ``tokens.path``, the token server."""

    def handle(request: Request) -> Response:
        if request.path == tokens.path:
            return tokens.handle(request)
        return app.handle(request)

    return handle


def _configure_auth(sim: RegistrySim, args: argparse.Namespace, ca: SimCA) -> None:
    users = _users(args.user, args.auth)
    if args.auth == "basic":
        sim.app.auth = BasicAuth(users)
    elif args.auth == "token":
        tokens = TokenServer(
            signing=ca.signing_key(), users=users, personality=args.personality
        )
        realm = f"{sim.url}{tokens.path}"
        sim.app.auth = TokenAuth(tokens, realm=realm)
        sim.router.default = _with_token_endpoint(sim.app, tokens)
        print(_PREFIX, "token realm", realm)


def _preload(sim: RegistrySim, specs: Sequence[str]) -> None:
    for spec in specs:
        path_text, _, reference = spec.partition("=")
        path = Path(path_text)
        image = load_recipe(path, directory=sim.storage.root)
        digest = sim.push(image, reference or f"{path.stem}:latest")
        print(_PREFIX, "preloaded", f"{reference or path.stem + ':latest'}@{digest}")


def _print_exchanges(sim: RegistrySim, stop: threading.Event) -> None:
    """Prints each new journal entry (already redacted) until ``stop`` is set."""
    printed = 0
    while not stop.wait(0.2):
        for exchange in sim.journal.exchanges:
            if exchange.seq > printed:
                print(_PREFIX, exchange.line(), flush=True)
                printed = exchange.seq


def _build(args: argparse.Namespace, ca: SimCA) -> RegistrySim:
    host, port = _address(args.listen, allow_non_loopback=args.allow_non_loopback)
    names = [n.strip() for n in args.cert_names.split(",") if n.strip()]
    tls = args.tls or args.mtls
    sim = RegistrySim(
        tls=ca if tls else False,
        faults=load_faults(args.faults) if args.faults else None,
        host=host,
        port=port,
        storage_root=args.storage,
        mtls=args.mtls,
        names=names,
    )
    sim.server.zero_copy = args.sendfile
    sim.server.max_connections = args.max_connections
    sim.server.head_timeout = args.head_timeout
    try:
        _configure_auth(sim, args, ca)
        _preload(sim, args.preload)
    except BaseException:
        sim.close()
        raise
    return sim


def _announce(sim: RegistrySim, args: argparse.Namespace, ca: SimCA) -> None:
    print(_PREFIX, "serving", sim.url)
    if args.tls or args.mtls or args.proxy_listen:
        ca_path = ca.write_ca()
        if args.ca_out is not None:
            shutil.copyfile(ca_path, args.ca_out)
            ca_path = args.ca_out
        print(_PREFIX, "ca", ca_path)
    if args.mtls:
        cert = ca.issue_client_cert("registry-sim-client")
        print(_PREFIX, "client-cert", cert.cert_path, "key", cert.key_path)
    if args.proxy_listen:
        host, port = _address(
            args.proxy_listen, allow_non_loopback=args.allow_non_loopback
        )
        for name in args.impersonate:
            sim.add_host(name, sim.router.default)
        proxy = sim.proxy(host=host, port=port)
        print(_PREFIX, "proxy", proxy.url, "for", ",".join(args.impersonate) or "-")
    print(_PREFIX, "ready", flush=True)


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with SimCA() as ca:
        sim = _build(args, ca)
        try:
            sim.start()
            _announce(sim, args, ca)
            if args.log_requests:
                printer = threading.Thread(
                    target=_print_exchanges, args=(sim, stop), daemon=True
                )
                printer.start()
            while not stop.wait(0.5):
                pass
            if args.log_requests:
                printer.join()
        finally:
            sim.close()
        print(_PREFIX, "stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _serve(args)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            where = " or ".join(filter(None, (args.listen, args.proxy_listen)))
            print(
                _PREFIX,
                f"error: cannot listen on {where}: the address is in use; stop "
                "the other server or pick another port (port 0 picks a free one)",
                file=sys.stderr,
            )
        else:
            print(_PREFIX, "error:", exc, file=sys.stderr)
        return 2
    except (UsageError, ValueError) as exc:
        print(_PREFIX, "error:", exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
