"""One large multi-layer pull by every puller at hand, side by side, in one run.

The pullers: refpull; Debian's containerd 1.6.20 (``/usr/bin/containerd``); every
runtime built into the cache by ``python -m cri_conformance.runtimes`` (the seed,
containerd 1.7.34, 2.0.11, 2.3.4 and CRI-O 1.36.3), each started the way the suite
starts it (private root, its generation's configuration, CRI ``PullImage``); skopeo
(``copy`` to ``dir:``); and the floor, one httpx client downloading and hashing the
same blobs. Two servers serve the same bytes on loopback over plain http:
registry-sim and Debian's docker-registry (its storage hard-linked, no copy).

Printed: each puller's best time per server and its peak memory, each as a ratio to
refpull's. Peak memory is the peak resident set of the process doing the pull:
GNU time's ``%M`` for refpull's and skopeo's process (Debian package ``time``), ``VmHWM`` of a runtime daemon read
just after its pull (so it includes the daemon's own start-up; each round starts a
fresh daemon). Then refpull's peak RSS on a larger pull (streamed: it should not grow
with the image).

    python bench/pull_bench.py --size-mib 512 --layers 4 --rss-size-mib 1024

The pullers run ``--repeat`` rounds (default 3), in an order rotated each round, and
each puller's best time is kept: on a shared virtual machine a single run mostly
measures who ran first (fresh guest memory pages are slow to touch) and what else was
running. Every run's time is printed too. Measured, not asserted: this is not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from registry_throughput import (
    DOCKER_REGISTRY,
    SCHEMA2,
    free_port,
    start_docker_registry,
    stop_process,
    wait_ready,
)

from cri_conformance.runtimes import RECIPES
from cri_conformance.runtimes.build import find_cached
from cri_conformance.targets.base import RegistrySetup, TargetEnvironment
from registry_sim.images import Image, Layer
from registry_sim.sim import RegistrySim

MiB = 1024 * 1024
# Every puller gets a proxy on a closed loopback port: the registries are on loopback
# (never proxied), so nothing can reach past it even by mistake.
NO_WAY_OUT = TargetEnvironment(http_proxy="http://127.0.0.1:9")
DEBIAN_CONTAINERD = "/usr/bin/containerd"
REFPULL = "refpull"


@dataclass(frozen=True)
class Pulled:
    """One pull: wall seconds and the puller's peak resident set (KiB; None: unknown)."""

    seconds: float
    peak_kib: int | None


@dataclass(frozen=True)
class Server:
    """A registry serving the bench image: its name and ``host:port``."""

    name: str
    host_port: str
    url: str


#: A puller: (server, repository, image) -> Pulled, or None when it cannot run here.
Step = Callable[[Server, str, Image], Pulled | None]


def build_image(directory: Path, size_mib: int, layers: int, seed: str) -> Image:
    per_layer = size_mib * MiB // layers
    built = [
        Layer.random(per_layer, seed=f"{seed}-{i}", directory=directory)
        for i in range(layers)
    ]
    return Image.schema2(built, nonce=seed)


def run_child(argv: list[str], work: Path) -> Pulled:
    """Run *argv* to completion; its wall time and its peak RSS.

    The peak comes from GNU time (``/usr/bin/time -f %M``), not from this process's
    ``wait4``: a child forked from a large process starts with that process's
    high-water mark (the kernel carries it over ``exec``), so ``ru_maxrss`` of a
    child of this benchmark would read at least the benchmark's own size.
    """
    gnu_time = Path("/usr/bin/time")
    report = work / "maxrss"
    if gnu_time.is_file():
        argv = [str(gnu_time), "-f", "%M", "-o", str(report), *argv]
    env = {**os.environ, **NO_WAY_OUT.as_environ()}
    start = time.perf_counter()
    status = subprocess.call(argv, env=env, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with status {status}")
    peak = None
    if gnu_time.is_file():
        peak = int(report.read_text().split()[-1])
        report.unlink()
    return Pulled(elapsed, peak)


def bench_refpull(server: Server, repo: str, image: Image, work: Path) -> Pulled:
    root = work / "refpull-root"
    shutil.rmtree(root, ignore_errors=True)
    ref = f"{server.host_port}/{repo}:1"
    argv = [sys.executable, "-m", "refpull", "pull", ref, "--root", str(root)]
    argv += ["--quiet", "--profile", "containerd-1.6"]
    try:
        return run_child(argv, work)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_skopeo(server: Server, repo: str, image: Image, work: Path) -> Pulled | None:
    if shutil.which("skopeo") is None:
        print("skopeo not installed (apt-get install -y skopeo): skipped")
        return None
    dest = work / "skopeo-dir"
    shutil.rmtree(dest, ignore_errors=True)
    argv = ["skopeo", "copy", "--src-tls-verify=false"]
    argv += [f"docker://{server.host_port}/{repo}:1", f"dir:{dest}"]
    try:
        return run_child(argv, work)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def bench_bare_httpx(server: Server, repo: str, image: Image) -> Pulled:
    """The floor: download + sha256 of the same blobs with one httpx client."""
    start = time.perf_counter()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for desc in image.layer_descriptors:
            digest = str(desc["digest"])
            hasher = hashlib.sha256()
            with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(1 << 20):
                    hasher.update(chunk)
            if "sha256:" + hasher.hexdigest() != digest:
                raise RuntimeError(f"{server.name} served wrong bytes for {digest}")
    return Pulled(time.perf_counter() - start, None)


def peak_rss_kib(pid: int) -> int | None:
    """``VmHWM`` (peak resident set) of a live process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def bench_runtime(
    server: Server, repo: str, image: Image, *, kind: str, binary: str
) -> Pulled | None:
    """Start a runtime the way the suite does, time one CRI ``PullImage``, stop it."""
    if not Path(binary).is_file():
        print(f"{binary} not found: skipped")
        return None
    # CRI-O speaks https unless told; containerd needs nothing for loopback.
    setup = RegistrySetup(insecure_hosts=(server.host_port,))
    target: Any
    if kind == "crio":
        from cri_conformance.targets.crio import CrioTarget

        target = CrioTarget(binary=binary, environment=NO_WAY_OUT, setup=setup)
    else:
        from cri_conformance.targets.containerd import ContainerdTarget

        target = ContainerdTarget(binary=binary, environment=NO_WAY_OUT, setup=setup)
    try:
        start = time.perf_counter()
        target.pull(f"{server.host_port}/{repo}:1")
        elapsed = time.perf_counter() - start
        proc = target._proc  # the daemon: its peak RSS before it stops
        return Pulled(elapsed, peak_rss_kib(proc.pid) if proc is not None else None)
    finally:
        target.close()


def runtime_steps() -> list[tuple[str, Step]]:
    """Debian's containerd, then every runtime built into the cache (newest build)."""
    steps: list[tuple[str, Step]] = [
        (
            "containerd 1.6.20 (Debian)",
            partial(bench_runtime, kind="containerd", binary=DEBIAN_CONTAINERD),
        )
    ]
    for recipe in RECIPES.values():
        built = find_cached(recipe)
        if built is None:
            print(
                f"{recipe.name} not built (python -m cri_conformance.runtimes build "
                f"{recipe.name} --upstream DIR): skipped"
            )
            continue
        kind = "crio" if recipe.binary == "crio" else "containerd"
        steps.append(
            (recipe.name, partial(bench_runtime, kind=kind, binary=str(built.binary)))
        )
    return steps


def layout_image(root: Path, repo: str, image: Image) -> None:
    """Put *image*'s blobs in distribution's filesystem layout (large ones hard-linked)."""
    base = root / "docker" / "registry" / "v2"
    for digest, content in image.blobs.items():
        hexdigest = digest.split(":", 1)[1]
        data = base / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
        data.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            os.link(content, data)
        else:
            data.write_bytes(content)
        link = base / "repositories" / repo / "_layers" / "sha256" / hexdigest / "link"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.write_text(digest)


@contextmanager
def docker_registry(work: Path, repo: str, image: Image) -> Iterator[Server | None]:
    """Debian's docker-registry serving *image* as ``repo:1``; None if not installed."""
    if not Path(DOCKER_REGISTRY).exists():
        print("docker-registry not installed (apt-get install -y docker-registry)")
        yield None
        return
    root = work / "docker-registry"
    layout_image(root, repo, image)
    port = free_port()
    proc = start_docker_registry(root, port, None, work)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, None)
        put = httpx.put(
            f"{url}/v2/{repo}/manifests/1",
            content=image.manifest,
            headers={"Content-Type": SCHEMA2},
            timeout=60,
        )
        put.raise_for_status()
        yield Server("docker-registry", f"127.0.0.1:{port}", url)
    finally:
        stop_process(proc)


def run_rounds(
    steps: list[tuple[str, Step]],
    servers: list[Server],
    repo: str,
    image: Image,
    rounds: int,
) -> dict[tuple[str, str], list[Pulled]]:
    """Run every (puller, server) *rounds* times, the order rotated each round.

    On a shared or virtual machine the first puller to write a lot of data also pays
    for fresh memory pages and for everybody else's load; rotating the order each
    round and keeping the minimum (as ``timeit`` does) compares like with like.
    """
    pairs = [(name, step, server) for server in servers for name, step in steps]
    seen: dict[tuple[str, str], list[Pulled]] = {
        (name, server.name): [] for name, _, server in pairs
    }
    skipped: set[tuple[str, str]] = set()
    for round_no in range(rounds):
        shift = (round_no * len(pairs)) // rounds
        for name, step, server in pairs[shift:] + pairs[:shift]:
            key = (name, server.name)
            if key in skipped:
                continue
            print(f"  round {round_no + 1}: {name} from {server.name} ...", flush=True)
            try:
                pulled = step(server, repo, image)
            except Exception as exc:  # one puller failing must not end the run
                print(f"    failed: {type(exc).__name__}: {exc}"[:400])
                pulled = None
            if pulled is None:
                skipped.add(key)
            else:
                seen[key].append(pulled)
    for (name, server_name), values in seen.items():
        shown = " ".join(f"{v.seconds:.2f}" for v in values)
        print(f"  runs of {name} from {server_name}: {shown or 'none'}")
    return seen


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}x"


def summarize(
    seen: dict[tuple[str, str], list[Pulled]], names: list[str], servers: list[Server]
) -> list[dict[str, Any]]:
    """One row per puller: best seconds per server, peak MiB (worst round), ratios."""
    rows: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {"puller": name}
        for server in servers:
            runs = seen.get((name, server.name), [])
            row[server.name] = min(p.seconds for p in runs) if runs else None
        peaks = [
            p.peak_kib / 1024
            for server in servers
            for p in seen.get((name, server.name), [])
            if p.peak_kib is not None
        ]
        row["peak_mib"] = max(peaks) if peaks else None
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], servers: list[Server]) -> None:
    base = next((r for r in rows if r["puller"] == REFPULL), {})
    header = f"  {'puller':28}"
    for server in servers:
        header += f" {server.name + ' s':>20} {'/refpull':>8}"
    header += f" {'peak MiB':>9} {'/refpull':>8}"
    print(header)
    for row in rows:
        line = f"  {row['puller']:28}"
        for server in servers:
            value = row[server.name]
            shown = f"{value:.2f}" if value is not None else "n/a"
            line += f" {shown:>20} {_ratio(value, base.get(server.name)):>8}"
        peak = row["peak_mib"]
        shown = f"{peak:.0f}" if peak is not None else "n/a"
        line += f" {shown:>9} {_ratio(peak, base.get('peak_mib')):>8}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help="image size (MiB)")
    parser.add_argument("--layers", type=int, default=4, help="number of layers")
    parser.add_argument(
        "--rss-size-mib",
        type=int,
        default=1024,
        help="image size for refpull's RSS run (0: skip)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds, in rotated order; the best time of each puller is shown",
    )
    parser.add_argument(
        "--json", type=Path, help="also write the table as JSON to this file"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pull-bench-"))
    repo = "bench/img"
    try:
        blobs = work / "blobs"
        blobs.mkdir()
        print(
            f"building a {args.size_mib} MiB, {args.layers}-layer image ...", flush=True
        )
        image = build_image(blobs, args.size_mib, args.layers, "bench")
        steps: list[tuple[str, Step]] = [
            ("bare httpx + sha256", bench_bare_httpx),
            (REFPULL, partial(bench_refpull, work=work)),
            ("skopeo copy to dir:", partial(bench_skopeo, work=work)),
            *runtime_steps(),
        ]
        with (
            RegistrySim(storage_root=work / "storage") as sim,
            docker_registry(work, repo, image) as peer,
        ):
            sim.push(image, f"{repo}:1")
            servers = [Server("registry-sim", sim.host_port, sim.url)]
            if peer is not None:
                servers.append(peer)
            seen = run_rounds(steps, servers, repo, image, max(1, args.repeat))
            rss_line = ""
            if args.rss_size_mib:
                big = build_image(blobs, args.rss_size_mib, args.layers, "rss")
                sim.push(big, "bench/big:1")
                pulled = bench_refpull(servers[0], "bench/big", big, work)
                rss_line = (
                    f"refpull peak RSS pulling {args.rss_size_mib} MiB: "
                    f"{(pulled.peak_kib or 0) / 1024:.0f} MiB ({pulled.seconds:.1f} s)"
                )
        rows = summarize(seen, [name for name, _ in steps], servers)
        rounds = f", best of {args.repeat} rounds" if args.repeat > 1 else ""
        print(
            f"\npull of {args.size_mib} MiB in {args.layers} layers "
            f"(loopback, http{rounds}; ratios to refpull):"
        )
        print_table(rows, servers)
        if rss_line:
            print(rss_line)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
