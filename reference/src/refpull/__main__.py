"""``refpull`` command line: ``explain``, ``pull`` and ``serve``.

Each sub-command lives in its own ``refpull.cli.<name>`` module exposing
``add_parser(subparsers)`` and ``run(args) -> int``; this module only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from refpull._version import package_version

_COMMANDS = ("explain", "pull", "serve")
# Sub-command descriptions are their module docstrings: show them without reST markup.
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain_text(text: str | None) -> str | None:
    """*text* without reST double backticks and roles (for ``--help``)."""
    if text is None:
        return None
    return _ROLE.sub(r"\1", text).replace("``", "")


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="refpull",
        description="Reference CRI image puller (the executable spec of cri-pull-conformance).",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {package_version()}"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules: dict[str, object] = {}
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"refpull.cli.{name}")
        except (
            ModuleNotFoundError
        ) as exc:  # pragma: no cover - only while a command is absent
            if exc.name != f"refpull.cli.{name}":
                raise
            continue
        module.add_parser(sub)
        modules[name] = module
    for command in sub.choices.values():
        command.description = plain_text(command.description)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = _build_parser()
    args = parser.parse_args(argv)
    module = modules[args.command]
    try:
        return int(module.run(args))  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
