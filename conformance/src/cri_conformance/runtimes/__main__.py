"""``python -m cri_conformance.runtimes``: build runtimes into the cache, print paths.

python -m cri_conformance.runtimes build containerd-1.7.34 --upstream ../shared/upstream
python -m cri_conformance.runtimes build containerd-2.3.4 --source ~/src/containerd
python -m cri_conformance.runtimes list
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cri_conformance.runtimes.build import BuildError, build, default_cache_dir
from cri_conformance.runtimes.recipes import RECIPES, get_recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cri_conformance.runtimes",
        description="Build CRI runtimes from source archives into a cache keyed by digest.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "build", help="build (or reuse) runtimes; prints each binary's path"
    )
    b.add_argument(
        "names", nargs="+", metavar="NAME", help=f"one of: {', '.join(RECIPES)}"
    )
    b.add_argument(
        "--upstream", type=Path, help="directory holding the source archives"
    )
    b.add_argument(
        "--source", type=Path, help="an unpacked checkout to build instead (one NAME)"
    )
    b.add_argument(
        "--cache-dir",
        type=Path,
        help=f"where builds are kept (default: {default_cache_dir()})",
    )
    sub.add_parser("list", help="the runtimes this knows how to build")
    args = parser.parse_args(argv)
    if args.command == "list":
        for recipe in RECIPES.values():
            print(f"{recipe.name}\t{recipe.archive}\tprofile {recipe.profile}")
        return 0
    if args.source is not None and len(args.names) != 1:
        parser.error("--source builds exactly one NAME")
    try:
        for name in args.names:
            built = build(
                get_recipe(name),
                upstream=args.upstream,
                source=args.source,
                cache_dir=args.cache_dir,
            )
            print(built.binary)
    except (BuildError, KeyError) as exc:
        print(
            f"cri_conformance.runtimes: {exc.args[0] if isinstance(exc, KeyError) else exc}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
