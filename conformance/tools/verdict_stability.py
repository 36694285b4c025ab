"""Run the conformance suite K times under a CPU burner and compare the verdicts.

Issue 11 item 6: cases that depend on wall time (token lifetimes, deadlines, stalls)
must give the same verdict with the machine's load average at 10. This script starts
enough busy-looping processes to bring the 1-minute load average to ``--load``, runs
the suite ``--runs`` times in a row with a report directory per run, samples
``/proc/loadavg`` while each run lasts, stops the burners (by PID), and prints every
case whose verdict differed between runs. Exit status 0: identical verdicts.

    python conformance/tools/verdict_stability.py --runs 3 --load 10 \\
        --out /tmp/stability -- --target reference --profile seed

Everything after ``--`` goes to pytest, after the suite path (``--suite``, default
``conformance/suite``). The burners and the suite run at the same niceness (``--nice``), so the suite
competes with them for the CPU as it would on a loaded CI machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_BURN = "while True:\n    pass\n"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _start_burners(count: int, nice: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", _BURN],
            preexec_fn=lambda: os.nice(nice),
        )
        for _ in range(count)
    ]


def _stop(burners: list[subprocess.Popen[bytes]]) -> None:
    for proc in burners:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in burners:
        proc.wait(timeout=10)


def _wait_for_load(target: float, limit: float) -> float:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and _loadavg() < target:
        time.sleep(2)
    return _loadavg()


def _run_once(
    index: int, out: Path, pytest_args: list[str], nice: int
) -> tuple[dict[str, str], list[float], float, int]:
    report_dir = out / f"run{index}"
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5):
            samples.append(_loadavg())

    sampler = threading.Thread(target=sample, daemon=True)
    command = [
        "nice", "-n", str(nice), sys.executable, "-m", "pytest", *pytest_args,
        "--report-dir", str(report_dir), "-q", "-p", "no:cacheprovider",
    ]  # fmt: skip
    started = time.monotonic()
    sampler.start()
    with (out / f"run{index}.log").open("wb") as log:
        status = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    done.set()
    elapsed = time.monotonic() - started
    data = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    verdicts = {c["nodeid"]: c["verdict"] for c in data["cases"]}
    return verdicts, samples, elapsed, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--load", type=float, default=10.0, help="target load average")
    parser.add_argument("--burners", type=int, help="busy processes (default: --load)")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--suite", type=Path, default=Path("conformance/suite"))
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    pytest_args = [str(args.suite), *args.pytest_args]
    args.out.mkdir(parents=True, exist_ok=True)
    # SIGTERM unwinds through the finally below, so the burners always stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    burners = _start_burners(args.burners or round(args.load), args.nice)
    runs: list[dict[str, str]] = []
    try:
        reached = _wait_for_load(args.load * 0.9, 90)
        _say(f"burners: {len(burners)}, load average before run 1: {reached:.1f}")
        for index in range(1, args.runs + 1):
            verdicts, samples, elapsed, status = _run_once(
                index, args.out, pytest_args, args.nice
            )
            runs.append(verdicts)
            counts: dict[str, int] = {}
            for verdict in verdicts.values():
                counts[verdict] = counts.get(verdict, 0) + 1
            low, high = (min(samples), max(samples)) if samples else (0.0, 0.0)
            _say(
                f"run {index}: exit {status}, {elapsed:.0f} s, load {low:.1f}-{high:.1f}, "
                + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
            )
    finally:
        _stop(burners)
    differing = sorted(
        nodeid
        for nodeid in set().union(*runs)
        if len({run.get(nodeid, "(absent)") for run in runs}) > 1
    )
    for nodeid in differing:
        _say(f"DIFFERS {nodeid}: " + " / ".join(r.get(nodeid, "-") for r in runs))
    _say(
        f"{len(differing)} of {len(set().union(*runs))} cases differ across "
        f"{len(runs)} runs"
    )
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
