"""``refpull`` command line: ``explain``, ``pull`` and ``serve``.

Each sub-command lives in its own ``refpull._cli_<name>`` module exposing
``add_parser(subparsers)`` and ``run(args) -> int``; this module only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

_COMMANDS = ("explain", "pull", "serve")


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="refpull",
        description="Reference CRI image puller (the executable spec of cri-pull-conformance).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules: dict[str, object] = {}
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"refpull._cli_{name}")
        except (
            ModuleNotFoundError
        ) as exc:  # pragma: no cover - only while a command is absent
            if exc.name != f"refpull._cli_{name}":
                raise
            continue
        module.add_parser(sub)
        modules[name] = module
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
