"""``refpull explain IMAGE``: print how a pull would go, without sending a request.

Exit status: 0 when the pull would start talking to a registry, 1 when it would fail
before any network I/O (the error is printed), 2 when the command's own input (config
file, auth JSON) is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from refpull.cli._common import InputError, add_input_arguments, read_inputs
from refpull.settings.explain import EndpointExplanation, Explanation, explain

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register the ``explain`` sub-command.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "explain",
        help="show endpoints, TLS and credential use of a pull (no network I/O)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "image", metavar="IMAGE", help="image reference as given to CRI"
    )
    add_input_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``refpull explain`` with parsed *args*.

    Args:
        args: the namespace built by the parser from :func:`add_parser`.

    Returns:
        0, 1 or 2 as described in the module docstring.
    """
    try:
        profile, config, auth = read_inputs(args)
    except InputError as exc:
        print(f"refpull explain: error: {exc}", file=sys.stderr)
        return 2
    result = explain(args.image, config, auth, profile)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(_render(result))
    return 1 if result.error else 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _render(result: Explanation) -> str:
    lines = [
        f"image:      {result.image}",
        f"reference:  {result.reference or '-'}",
        f"profile:    {result.profile}",
        f"config:     {result.config_source or '(built-in defaults)'}",
    ]
    if result.host_dir is not None:
        lines.append(f"host dir:   {result.host_dir} (config_path, hosts.toml mode)")
    if result.registry_host is not None:
        lines.append(
            f"registry:   {result.registry_host}   repository: {result.repository}"
            f"   object: {result.object}"
        )
        lines.append(f"max concurrent downloads: {result.max_concurrent_downloads}")
    if result.endpoints:
        lines.append("endpoints (tried in this order):")
        for number, endpoint in enumerate(result.endpoints, start=1):
            lines += _render_endpoint(number, endpoint)
    if result.error:
        lines.append("result:     the pull fails before any network I/O:")
        lines.append(f"  {result.error}")
        if result.error_key:
            lines.append(f"  (setting: {result.error_key})")
    else:
        lines.append("result:     no error before the first request")
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def _render_endpoint(number: int, e: EndpointExplanation) -> list[str]:
    role = "mirror" if e.is_mirror else "registry"
    if e.capabilities != ("pull", "resolve"):
        role += f", capabilities: {' '.join(e.capabilities) or 'none'}"
    if e.http_fallback:
        role += ", https first then http"
    tls = "system roots"
    if e.ca_file:
        tls += f" + ca_file {e.ca_file}"
    if e.cert_file:
        tls += f"; client cert {e.cert_file} key {e.key_file}"
    if e.skip_verify:
        tls = "verification OFF (insecure_skip_verify)"
    creds = e.credentials
    if e.credential_kind:
        creds += f" ({e.credential_kind})"
    lines = [
        f"  {number}. {e.endpoint}   [{role}]",
        f"     request:     {e.url}",
        f"     scheme/host: {e.scheme} {e.host}   path: {e.path}   "
        f"query: {e.query or '-'}",
        f"     tls:         {tls if e.scheme == 'https' else 'n/a (plain http); ' + tls}",
        f"     runtime skips verify: {_yes(e.runtime_skips_verify)}",
        f"     credentials: {creds}   source: {e.credentials_source}",
    ]
    if e.header_names:
        lines.append(f"     headers:     {', '.join(e.header_names)}")
    lines += [f"     from:        {what} <- {where}" for what, where in e.sources]
    lines += [f"     note: {note}" for note in e.notes]
    return lines
