"""Run every benchmark in one go: ``tox -e bench`` (or ``python bench/run.py``).

1. ``registry_throughput.py``: registry-sim next to Debian's docker-registry (one
   512 MiB blob over http and TLS with curl; 32 concurrent clients).
2. ``pull_bench.py``: the same 512 MiB, 4-layer image pulled by refpull, skopeo,
   Debian's containerd 1.6.20 and every runtime built into the cache (the seed,
   containerd 1.7.34, 2.0.11, 2.3.4, CRI-O 1.36.3), served by registry-sim and by
   docker-registry; time and peak memory as ratios to refpull; refpull's peak RSS on
   a 1 GiB pull.

Figures are printed as seconds and ratios; nothing is asserted (timing belongs here,
not in tests). ``--quick`` shrinks the sizes for a smoke run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = parser.parse_args(argv)
    registry = (
        ["--size-mib", "64", "--heads", "2000", "--pulls", "40"] if args.quick else []
    )
    pull = ["--size-mib", "64", "--rss-size-mib", "128"] if args.quick else []
    status = 0
    for script, extra in (
        ("registry_throughput.py", registry),
        ("pull_bench.py", pull),
    ):
        print(f"== {script} {' '.join(extra)}", flush=True)
        status |= subprocess.call([sys.executable, str(HERE / script), *extra])
    return status


if __name__ == "__main__":
    sys.exit(main())
