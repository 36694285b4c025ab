"""``refpull pull IMAGE``: pull and unpack an image, print its image ID.

Progress goes to stderr (per layer on a terminal, JSON lines with ``--json``); the
image ID (the config digest, CRI-001) is the last line on stdout. Exit status: 0 on
success, 1 when the pull fails (one line naming the error), 2 when the command's own
input (config file, auth JSON) is unusable. Proxy variables are read here, and only
here, and passed down (XPORT-001).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from refpull.budget import PullBudget
from refpull.cli._common import (
    InputError,
    add_input_arguments,
    checked_root,
    proxy_environ,
    read_inputs,
)
from refpull.cli._limits import add_limit_arguments, limits_from_args
from refpull.cli._progress import make_renderer
from refpull.errors import RefpullError
from refpull.limits import add_content_limit_arguments, content_limits_from_args
from refpull.pull.puller import Puller
from refpull.registry.transport import TransportSettings

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
        "--root",
        metavar="DIR",
        default="refpull-root",
        help="content, snapshots and image records; created when missing "
        "(default: ./refpull-root)",
    )
    add_input_arguments(parser)
    add_limit_arguments(parser)
    add_content_limit_arguments(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only the image ID")
    output.add_argument(
        "--json",
        action="store_true",
        help="progress as JSON lines on stderr (kind, reference, digest, size, done, "
        "elapsed)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``refpull pull`` with parsed *args*.

    Args:
        args: the namespace built by the parser from :func:`add_parser`.

    Returns:
        0, 1 or 2 as described in the module docstring.
    """
    try:
        profile, config, auth = read_inputs(args)
        root = checked_root(args.root)
    except InputError as exc:
        print(f"refpull pull: error: {exc}", file=sys.stderr)
        return 2
    mode = "quiet" if args.quiet else "json" if args.json else "text"
    environ = proxy_environ()
    renderer = make_renderer(mode, sys.stderr)
    puller = Puller(
        root=root,
        config=config,
        profile=profile,
        environ=environ,
        progress=renderer,
        settings=TransportSettings(budget=PullBudget(limits_from_args(args))),
        limits=content_limits_from_args(args),
    )
    try:
        with renderer:
            result = puller.pull(args.image, auth)
    except RefpullError as exc:
        # A one-shot pull resumes nothing later: its partial downloads go (PULL-015).
        with contextlib.suppress(OSError):
            puller.content.discard_partial_ingests()
        # Typed errors carry no credential (errors.py), so the message is safe to show.
        print(f"refpull pull: {type(exc).__name__}: {exc}{_hint(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"refpull pull: error: {exc.strerror or exc} ({args.root})", file=sys.stderr
        )
        return 1
    print(result.image_id)
    return 0


def _hint(error: RefpullError) -> str:
    """What to do about a plain-http request answered by a TLS port."""
    text = str(error)
    if "http://" in text and ("reset by peer" in text or "BadStatusLine" in text):
        return (
            "; is that port TLS? Registries on localhost/127.0.0.1 are spoken to in "
            "plain http unless the --config gives an https:// endpoint for them"
        )
    return ""
