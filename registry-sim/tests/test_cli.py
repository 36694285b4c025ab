"""``python -m registry_sim serve`` as a subprocess on loopback."""

from __future__ import annotations

import os
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from registry_sim.__main__ import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


class Served:
    """A running ``registry-sim serve`` and the lines it printed up to ``ready``."""

    def __init__(self, args: Sequence[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "registry_sim", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        self._read_until("ready", timeout=30)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _read_until(self, word: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if line.split()[1:2] == [word]:
                return
        self.stop()
        raise AssertionError(f"no {word!r} line; got {self.lines}")

    def value(self, key: str) -> str:
        """The first word after ``registry-sim: <key>``."""
        for line in self.lines:
            words = line.split()
            if words[1:2] == [key]:
                return words[2]
        raise AssertionError(f"no {key!r} line in {self.lines}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        finally:
            self._reader.join(5)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_serve_prints_its_url_serves_and_exits_cleanly_on_signal(sig: int) -> None:
    running = Served(["--listen", "127.0.0.1:0"])
    try:
        url = running.value("serving")
        assert url.startswith("http://127.0.0.1:")
        response = httpx.get(f"{url}/v2/")
        assert response.status_code == 200
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    finally:
        code = running.stop(sig)
    assert code == 0


def test_tls_token_auth_preload_and_proxy_work_together(tmp_path: Path) -> None:
    ca_out = tmp_path / "ca.pem"
    recipe = FIXTURES / "images" / "busybox-like.json"
    running = Served(
        [
            "--listen=127.0.0.1:0",
            "--tls",
            f"--ca-out={ca_out}",
            "--auth=token",
            "--user=alice:pw",
            f"--preload={recipe}=library/busybox:1",
            "--proxy-listen=127.0.0.1:0",
            "--impersonate=registry-1.docker.io",
        ]
    )
    try:
        url, proxy = running.value("serving"), running.value("proxy")
        assert running.value("ca") == str(ca_out)
        verify = ssl.create_default_context(cafile=str(ca_out))
        scope = "repository:library/busybox:pull"
        with httpx.Client(verify=verify) as client:
            assert client.get(f"{url}/v2/").status_code == 401
            token = client.get(
                f"{url}/token", params={"scope": scope}, auth=("alice", "pw")
            ).json()["token"]
            tags = client.get(
                f"{url}/v2/library/busybox/tags/list",
                headers={"Authorization": f"Bearer {token}"},
            )
        assert tags.json()["tags"] == ["1"]
        with httpx.Client(proxy=proxy, verify=verify) as via_proxy:
            hub = via_proxy.get("https://registry-1.docker.io/v2/")
        assert hub.status_code == 401  # the same registry, now under Docker Hub's name
    finally:
        assert running.stop() == 0


def test_non_loopback_listen_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--listen", "0.0.0.0:0"]) == 2
    assert "--allow-non-loopback" in capsys.readouterr().err


FLAGS = (
    "--listen",
    "--tls",
    "--ca-out",
    "--cert-names",
    "--mtls",
    "--auth",
    "--user",
    "--personality",
    "--faults",
    "--preload",
    "--storage",
    "--proxy-listen",
    "--impersonate",
    "--allow-non-loopback",
    "--log-requests",
    "--sendfile",
    "--max-connections",
    "--head-timeout",
)


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    rows = [line.strip() for line in text.splitlines()]
    documented = {row.split()[0].rstrip(",") for row in rows if row.startswith("--")}
    assert documented == set(FLAGS)


def test_version_is_the_distribution_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    expected = f"registry-sim {version('cri-pull-conformance')}\n"
    assert capsys.readouterr().out == expected


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("registry-sim: error: ")
    return lines[0]


def test_basic_auth_without_a_user_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--listen", "127.0.0.1:0", "--auth", "basic"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "add --user USER:PASSWORD" in line


def test_a_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    running = Served(["--listen", "127.0.0.1:0"])
    try:
        taken = running.value("serving").removeprefix("http://")
        assert main(["serve", "--listen", taken]) == 2
    finally:
        running.stop()
    line = _one_error_line(capsys.readouterr().err)
    assert f"cannot listen on {taken}: the address is in use" in line
