"""Throughput of registry-sim next to Debian's docker-registry, on loopback.

    python bench/registry_throughput.py [--size-mib 512] [--runs 3]

1. One large blob (default 512 MiB of incompressible bytes) is fetched with
   ``curl -o /dev/null`` from registry-sim over plain HTTP and over TLS, and from
   ``/usr/bin/docker-registry serve`` (filesystem storage in a temp dir; the blob is
   hard-linked into its storage layout) over the same two transports. MB/s per
   target and the ratio registry-sim / docker-registry are printed (goal >= 1.0).
2. 32 concurrent clients (``curl --parallel --parallel-max 32``): manifest HEADs per
   second, then full pulls of a 4-layer image (manifest, config, 4 layers), with
   the count of non-2xx answers (goal: none).

Both servers run as separate processes (registry-sim via ``python -m registry_sim
serve``), so the load generator never shares a GIL with the server. Every address is
127.0.0.1 and every process started here is stopped by PID before exit.
Measured, not asserted: this is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trustme

DOCKER_REGISTRY = "/usr/bin/docker-registry"
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
CLIENTS = 32


@dataclass
class Target:
    """A registry endpoint under test."""

    name: str
    url: str
    cacert: Path | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, cacert: Path | None, timeout: float = 60.0) -> None:
    verify: ssl.SSLContext | bool = True
    if cacert is not None:
        verify = ssl.create_default_context(cafile=str(cacert))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/", verify=verify, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


class SimProcess:
    """``python -m registry_sim serve`` in a subprocess; reads its startup lines."""

    def __init__(self, args: Sequence[str], timeout: float = 600.0) -> None:
        command = [sys.executable, "-m", "registry_sim", "serve", *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.info: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while "ready" not in self.info:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError(f"registry-sim exited: {self.proc.wait()}")
            words = line.split()
            if len(words) >= 2:
                self.info[words[1]] = words[2] if len(words) > 2 else ""

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def write_recipes(tmp: Path, size: int) -> tuple[Path, Path]:
    big = {
        "kind": "schema2",
        "layers": [{"random": {"size": size, "seed": 1}, "compression": "none"}],
    }
    small = {
        "kind": "schema2",
        "layers": [
            {"random": {"size": 1024 * 1024, "seed": seed}, "compression": "none"}
            for seed in (2, 3, 4, 5)
        ],
    }
    (tmp / "big.json").write_text(json.dumps(big))
    (tmp / "small.json").write_text(json.dumps(small))
    return tmp / "big.json", tmp / "small.json"


def fetch_image(url: str, repo: str) -> tuple[bytes, dict[str, Any]]:
    manifest = httpx.get(
        f"{url}/v2/{repo}/manifests/1", headers={"Accept": SCHEMA2}
    ).content
    return manifest, json.loads(manifest)


def find_blob(storage: Path, digest: str) -> Path:
    hexdigest = digest.split(":", 1)[1]
    for path in storage.rglob(hexdigest):
        if path.is_file():
            return path
    raise FileNotFoundError(digest)


def layout_blob(root: Path, repo: str, digest: str, source: Path) -> None:
    """Places a blob in distribution's filesystem layout (hard link, no copy)."""
    hexdigest = digest.split(":", 1)[1]
    base = root / "docker" / "registry" / "v2"
    data = base / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
    data.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, data)
    link = base / "repositories" / repo / "_layers" / "sha256" / hexdigest / "link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_text(digest)


def push_image(url: str, repo: str, manifest: bytes, blobs: dict[str, bytes]) -> None:
    """Pushes blobs and a manifest through the distribution API."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for digest, data in blobs.items():
            started = client.post(f"/v2/{repo}/blobs/uploads/")
            location = started.headers["Location"]
            sep = "&" if "?" in location else "?"
            done = client.put(
                f"{location}{sep}digest={digest}",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            done.raise_for_status()
        put = client.put(
            f"/v2/{repo}/manifests/1",
            content=manifest,
            headers={"Content-Type": SCHEMA2},
        )
        put.raise_for_status()


def start_docker_registry(
    root: Path, port: int, tls: tuple[Path, Path] | None, tmp: Path
) -> subprocess.Popen[Any]:
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if tls is not None:
        config["http"] = {
            "addr": f"127.0.0.1:{port}",
            "tls": {"certificate": str(tls[0]), "key": str(tls[1])},
        }
    path = tmp / f"registry-{port}.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return subprocess.Popen(
        [DOCKER_REGISTRY, "serve", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def curl_speed(target: Target, path: str) -> tuple[float, int]:
    """One ``curl -o /dev/null`` download; returns (MB/s, bytes)."""
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"]
    if target.cacert is not None:
        command += ["--cacert", str(target.cacert)]
    started = time.monotonic()
    out = subprocess.run(
        [*command, f"{target.url}{path}"], capture_output=True, text=True, check=True
    ).stdout
    elapsed = time.monotonic() - started
    status, size = out.split()
    if status != "200":
        raise RuntimeError(f"{target.name}: GET {path} answered {status}")
    return int(size) / elapsed / 1e6, int(size)


def curl_parallel(
    target: Target, urls: Sequence[str], *, head: bool, tmp: Path
) -> tuple[float, Counter[str]]:
    """Fetches ``urls`` with 32 parallel transfers; returns (seconds, statuses)."""
    config = tmp / f"curl-{target.name}.cfg"
    lines = ["head"] if head else []
    lines.append(f'header = "Accept: {SCHEMA2}"')
    for url in urls:
        lines += [f'url = "{url}"', 'output = "/dev/null"']
    config.write_text("\n".join(lines) + "\n")
    command = ["curl", "-s", "--parallel", "--parallel-immediate"]
    command += [
        "--parallel-max",
        str(CLIENTS),
        "-w",
        "%{http_code}\n",
        "-K",
        str(config),
    ]
    if target.cacert is not None:
        command += ["--cacert", str(target.cacert)]
    started = time.monotonic()
    out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    return time.monotonic() - started, Counter(out.split())


def throughput(targets: Sequence[Target], path: str, runs: int) -> dict[str, float]:
    # Rounds interleave the targets so drift (page cache, CPU frequency) hits all.
    measured: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(runs):
        for target in targets:
            measured[target.name].append(curl_speed(target, path)[0])
    results = {}
    for target in targets:
        speeds = measured[target.name]
        results[target.name] = statistics.median(speeds)
        shown = ", ".join(f"{s:.0f}" for s in speeds)
        print(f"  {target.name:<22} {results[target.name]:8.0f} MB/s  (runs: {shown})")
    return results


def concurrency(
    targets: Sequence[Target], small: dict[str, Any], heads: int, pulls: int, tmp: Path
) -> None:
    repo = "bench/small"
    digests = [small["config"]["digest"], *(d["digest"] for d in small["layers"])]
    for target in targets:
        manifest_url = f"{target.url}/v2/{repo}/manifests/1"
        seconds, statuses = curl_parallel(
            target, [manifest_url] * heads, head=True, tmp=tmp
        )
        bad = sum(n for code, n in statuses.items() if not code.startswith("2"))
        print(
            f"  {target.name:<22} {heads / seconds:8.0f} manifest HEAD/s  "
            f"({heads} in {seconds:.2f}s, non-2xx: {bad}, statuses {dict(statuses)})"
        )
        per_pull = [manifest_url] + [
            f"{target.url}/v2/{repo}/blobs/{d}" for d in digests
        ]
        seconds, statuses = curl_parallel(target, per_pull * pulls, head=False, tmp=tmp)
        bad = sum(n for code, n in statuses.items() if not code.startswith("2"))
        print(
            f"  {target.name:<22} {pulls / seconds:8.1f} pulls/s of 4 x 1 MiB layers  "
            f"({pulls} pulls in {seconds:.2f}s, non-2xx: {bad})"
        )


def run(args: argparse.Namespace, tmp: Path) -> None:
    if not Path(DOCKER_REGISTRY).exists():
        raise SystemExit(
            "needs Debian's docker-registry: apt-get install docker-registry"
        )
    big_recipe, small_recipe = write_recipes(tmp, args.size_mib * 1024 * 1024)
    common = ["--listen", "127.0.0.1:0", "--preload", f"{big_recipe}=bench/big:1"]
    common += ["--preload", f"{small_recipe}=bench/small:1"]
    processes: list[subprocess.Popen[Any]] = []
    sims: list[SimProcess] = []
    try:
        print(f"building and loading a {args.size_mib} MiB blob into registry-sim ...")
        sims.append(
            SimProcess([*common, "--sendfile", "--storage", str(tmp / "sim-http")])
        )
        sims.append(SimProcess([*common, "--tls", "--storage", str(tmp / "sim-tls")]))
        copy_args = [*common, "--storage", str(tmp / "sim-copy")]
        sims.append(SimProcess(copy_args))
        sim_http = Target("registry-sim http sendfile", sims[0].info["serving"], None)
        sim_tls = Target(
            "registry-sim https", sims[1].info["serving"], Path(sims[1].info["ca"])
        )
        sim_copy = Target("registry-sim http (default)", sims[2].info["serving"], None)
        _, big = fetch_image(sim_http.url, "bench/big")
        blob_digest = big["layers"][0]["digest"]
        small_manifest, small = fetch_image(sim_http.url, "bench/small")

        root = tmp / "docker-registry"
        layout_blob(
            root, "bench/big", blob_digest, find_blob(tmp / "sim-http", blob_digest)
        )
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1")
        cert, key, ca_pem = tmp / "dr.crt", tmp / "dr.key", tmp / "dr-ca.pem"
        cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        ca.cert_pem.write_to_path(str(ca_pem))
        http_port, tls_port = free_port(), free_port()
        processes.append(start_docker_registry(root, http_port, None, tmp))
        processes.append(start_docker_registry(root, tls_port, (cert, key), tmp))
        dr_http = Target("docker-registry http", f"http://127.0.0.1:{http_port}", None)
        dr_tls = Target(
            "docker-registry https", f"https://127.0.0.1:{tls_port}", ca_pem
        )
        wait_ready(dr_http.url, None)
        wait_ready(dr_tls.url, ca_pem)
        blobs = {
            d["digest"]: httpx.get(
                f"{sim_http.url}/v2/bench/small/blobs/{d['digest']}"
            ).content
            for d in [small["config"], *small["layers"]]
        }
        push_image(dr_http.url, "bench/small", small_manifest, blobs)

        print(
            f"\n1. one {args.size_mib} MiB blob, curl -o /dev/null, median of {args.runs}"
        )
        speeds = throughput(
            [sim_http, sim_copy, sim_tls, dr_http, dr_tls],
            f"/v2/bench/big/blobs/{blob_digest}",
            args.runs,
        )
        pairs = [
            ("http (default)", "http"),
            ("http sendfile", "http"),
            ("https", "https"),
        ]
        for sim_kind, dr_kind in pairs:
            ratio = (
                speeds[f"registry-sim {sim_kind}"]
                / speeds[f"docker-registry {dr_kind}"]
            )
            print(f"  ratio registry-sim {sim_kind} / docker-registry: {ratio:.2f}x")

        print(f"\n2. {CLIENTS} concurrent clients (curl --parallel), plain http")
        concurrency([sim_http, sim_copy, dr_http], small, args.heads, args.pulls, tmp)
    finally:
        for sim in sims:
            sim.stop()
        for proc in processes:
            stop_process(proc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512, help="blob size (MiB)")
    parser.add_argument("--runs", type=int, default=3, help="downloads per target")
    parser.add_argument("--heads", type=int, default=20000, help="manifest HEADs")
    parser.add_argument("--pulls", type=int, default=400, help="4-layer pulls")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
