"""``refpull`` command line: one line per error, ``--version``, CRI Version, progress."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from refpull.__main__ import main
from refpull._version import package_version
from refpull.cli import _progress
from refpull.cri.api import api_v1_pb2, api_v1_pb2_grpc
from refpull.cri.grpc_server import CRIServer, serve
from refpull.profiles import CONTAINERD_16, SEED, Profile
from refpull.pull.puller import ProgressEvent
from refpull.settings.config import default_config
from registry_sim.sim import RegistrySim


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="rp-cli-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str, prefix: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), err
    return lines[0]


def _server(directory: Path, profile: Profile) -> CRIServer:
    return serve(
        directory / "cri.sock",
        root=directory / "root",
        config=default_config(profile),
        profile=profile,
    )


def test_version_is_the_distribution_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"refpull {package_version()}\n"


@pytest.mark.parametrize("command", ["pull", "serve", "explain"])
def test_help_shows_no_rest_markup(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "``" not in text
    assert ":func:" not in text


def test_pull_help_names_the_default_root(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pull", "--help"])
    assert "(default: ./refpull-root)" in " ".join(capsys.readouterr().out.split())


def test_pull_into_a_root_that_is_a_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    code, out, err = _run(capsys, "pull", "127.0.0.1:1/x:1", "--root", str(afile))
    assert (code, out) == (2, "")
    assert "is not a directory" in _one_line(err, "refpull pull: error: --root")


def test_serve_on_a_missing_directory_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    listen = f"unix://{tmp_path}/missing/dir/x.sock"
    code, _, err = _run(capsys, "serve", "--listen", listen, "--root", str(tmp_path))
    assert code == 2
    line = _one_line(err, "refpull serve: error: --listen")
    assert f"directory {tmp_path}/missing/dir does not exist" in line


def test_serve_with_a_root_that_is_a_file_is_one_line(
    capsys: pytest.CaptureFixture[str], short_dir: Path
) -> None:
    (short_dir / "afile").write_text("")
    listen = f"unix://{short_dir}/x.sock"
    code, _, err = _run(
        capsys, "serve", "--listen", listen, "--root", str(short_dir / "afile")
    )
    assert code == 2
    assert "is not a directory" in _one_line(err, "refpull serve: error: --root")


def test_serve_refuses_a_socket_a_live_server_answers_on(
    capsys: pytest.CaptureFixture[str], short_dir: Path
) -> None:
    live = _server(short_dir, CONTAINERD_16)
    try:
        listen = f"unix://{short_dir}/cri.sock"
        root = str(short_dir / "other")
        code, _, err = _run(capsys, "serve", "--listen", listen, "--root", root)
        assert code == 1
        assert "in use by a running server" in _one_line(err, "refpull serve: ")
        # The live server still answers: it was not taken over.
        with grpc.insecure_channel(listen) as channel:
            stub = api_v1_pb2_grpc.RuntimeServiceStub(channel)
            assert stub.Version(api_v1_pb2.VersionRequest(), timeout=10).runtime_name
    finally:
        live.stop(grace=None)


@pytest.mark.parametrize("profile", [SEED, CONTAINERD_16], ids=lambda p: p.name)
def test_cri_version_names_refpull_its_version_and_its_profile(
    short_dir: Path, profile: Profile
) -> None:
    from refpull.cri.api import api_v1alpha2_pb2, api_v1alpha2_pb2_grpc

    server = _server(short_dir, profile)
    try:
        with grpc.insecure_channel(f"unix://{short_dir}/cri.sock") as channel:
            stub = api_v1alpha2_pb2_grpc.RuntimeServiceStub(channel)
            answer = stub.Version(api_v1alpha2_pb2.VersionRequest(), timeout=10)
    finally:
        server.stop(grace=None)
    assert answer.runtime_name == "refpull"
    assert answer.runtime_version == f"{package_version()}+{profile.name}"


def test_plain_http_to_a_tls_port_says_what_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with RegistrySim(tls=True) as sim:
        image = f"{sim.host_port}/app:1"
        code, out, err = _run(capsys, "pull", image, "--root", str(tmp_path), "--quiet")
    assert (code, out) == (1, "")
    line = _one_line(err, "refpull pull: ")
    assert "http://127.0.0.1" in line
    assert "is that port TLS?" in line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


_A, _B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def _two_layers(render: _progress.ProgressRenderer) -> None:
    with render:
        render(ProgressEvent("resolved", "r", "sha256:" + "c" * 64, 100))
        render(ProgressEvent("layer-started", "r", _A, 1000))
        render(ProgressEvent("layer-started", "r", _B, 2000))
        render(ProgressEvent("layer-bytes", "r", _A, 1000, 500))
        render(ProgressEvent("layer-bytes", "r", _B, 2000, 1000))
        render(ProgressEvent("layer-bytes", "r", _B, 2000, 2000))
        render(ProgressEvent("layer-done", "r", _B, 2000, 2000))
        render(ProgressEvent("layer-bytes", "r", _A, 1000, 1000))
        render(ProgressEvent("layer-done", "r", _A, 1000, 1000))


def test_a_terminal_gets_one_bar_per_layer_with_percent() -> None:
    stream = _Terminal()
    render = _progress.make_renderer("text", stream)
    _two_layers(render)
    text = stream.getvalue()
    assert "sha256:aaaaaaaaaaaa" in text
    assert "sha256:bbbbbbbbbbbb" in text
    assert "100%" in text
    assert "resolved sha256:ccc" in text


def test_a_pipe_gets_plain_lines_per_layer() -> None:
    stream = io.StringIO()
    _two_layers(_progress.make_renderer("text", stream))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert "layer sha256:aaaaaaaaaaaa downloading 1.0 kB" in lines
    assert "layer sha256:bbbbbbbbbbbb downloading 2.0 kB" in lines
    assert next(x for x in lines if "done" in x).startswith("layer sha256:bbbbbbbbbbbb")


def test_json_events_carry_done_bytes_and_elapsed_time() -> None:
    stream = io.StringIO()
    _two_layers(_progress.make_renderer("json", stream))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {tuple(sorted(e)) for e in events} == {
        ("digest", "done", "elapsed", "kind", "reference", "size")
    }
    done = {e["digest"]: e["done"] for e in events if e["kind"] == "layer-done"}
    assert done == {_A: 1000, _B: 2000}
    # The last layer-bytes of each layer is always shown, whatever the rate limit.
    last = {e["digest"]: e["done"] for e in events if e["kind"] == "layer-bytes"}
    assert last == {_A: 1000, _B: 2000}


def test_quiet_shows_nothing() -> None:
    stream = _Terminal()
    _two_layers(_progress.make_renderer("quiet", stream))
    assert stream.getvalue() == ""
