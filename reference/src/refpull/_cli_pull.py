"""``refpull pull IMAGE``: pull and unpack an image, print its image ID.

Progress goes to stderr (per layer on a terminal, JSON lines with ``--json``); the
image ID (the config digest, CRI-001) is the last line on stdout. Exit status: 0 on
success, 1 when the pull fails (one line naming the error), 2 when the command's own
input (config file, auth JSON) is unusable. Proxy variables are read here, and only
here, and passed down (XPORT-001).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from refpull._cli_common import (
    InputError,
    add_input_arguments,
    proxy_environ,
    read_inputs,
)
from refpull._cli_limits import add_limit_arguments, limits_from_args
from refpull.budget import PullBudget
from refpull.errors import RefpullError
from refpull.puller import ProgressEvent, Puller
from refpull.transport import TransportSettings

__all__ = ["add_parser", "run"]

# Go's http.ProxyFromEnvironment reads these (and REQUEST_METHOD, the CGI guard).


def add_parser(subparsers: Any) -> None:
    """Register the ``pull`` sub-command.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "pull",
        help="pull and unpack an image like the CRI plugin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "image", metavar="IMAGE", help="image reference as given to CRI"
    )
    parser.add_argument(
        "--root", metavar="DIR", default="refpull-root", help="content and snapshots"
    )
    add_input_arguments(parser)
    add_limit_arguments(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only the image ID")
    output.add_argument("--json", action="store_true", help="progress as JSON lines")


class _Reporter:
    """Renders progress events on stderr; called from download threads."""

    def __init__(self, *, mode: str) -> None:
        self._mode = mode
        self._lock = threading.Lock()
        self._tty = sys.stderr.isatty()

    def __call__(self, event: ProgressEvent) -> None:
        if self._mode == "quiet":
            return
        with self._lock:
            if self._mode == "json":
                print(json.dumps(event.__dict__, sort_keys=True), file=sys.stderr)
            elif event.kind == "layer-bytes":
                if self._tty:
                    line = f"\r{event.digest[:19]}  {event.done}/{event.size} bytes"
                    print(line, end="", file=sys.stderr, flush=True)
            else:
                prefix = "\n" if self._tty and event.kind == "layer-done" else ""
                detail = f" {event.digest}" if event.digest else ""
                print(f"{prefix}{event.kind}{detail}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run ``refpull pull`` with parsed *args*.

    Args:
        args: the namespace built by the parser from :func:`add_parser`.

    Returns:
        0, 1 or 2 as described in the module docstring.
    """
    try:
        profile, config, auth = read_inputs(args)
    except InputError as exc:
        print(f"refpull pull: error: {exc}", file=sys.stderr)
        return 2
    mode = "quiet" if args.quiet else "json" if args.json else "text"
    environ = proxy_environ()
    puller = Puller(
        root=Path(args.root),
        config=config,
        profile=profile,
        environ=environ,
        progress=_Reporter(mode=mode),
        settings=TransportSettings(budget=PullBudget(limits_from_args(args))),
    )
    try:
        result = puller.pull(args.image, auth)
    except RefpullError as exc:
        # Typed errors carry no credential (errors.py), so the message is safe to show.
        print(f"refpull pull: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(result.image_id)
    return 0
