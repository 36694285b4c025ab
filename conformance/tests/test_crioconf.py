"""The neutral registry setup rendered for CRI-O (registries.conf, certs.d, auth.json)."""

from __future__ import annotations

import base64
import json
import sys
import tomllib
from pathlib import Path

from cri_conformance.targets._crioconf import render_registries, write_crio_files
from cri_conformance.targets.base import (
    AuthSpec,
    HostSettings,
    RegistrySetup,
    TargetEnvironment,
)
from cri_conformance.targets.factory import run_config_hook

SETUP = RegistrySetup(
    mirrors={
        "mirrored.test": ["https://mirror-a.test", "http://127.0.0.1:5001"],
        "slash.test": ["http://127.0.0.1:5002/"],
    },
    configs={
        "mirror-a.test": HostSettings(
            ca_file="/ca.pem", auth=AuthSpec(username="alice", password="pw")
        ),
        "skip.test:443": HostSettings(insecure_skip_verify=True),
    },
    headers={"X-Op": ["v"]},
    insecure_hosts=("127.0.0.1:5000",),
)


def _registries() -> dict[str, dict[str, object]]:
    text, _ = render_registries(SETUP)
    parsed = tomllib.loads(text)
    return {str(r.get("prefix", r["location"])): r for r in parsed["registry"]}


def test_mirrors_keep_their_order_and_http_ones_are_insecure() -> None:
    mirrored = _registries()["mirrored.test"]
    assert mirrored["location"] == "mirrored.test"
    assert "insecure" not in mirrored
    assert mirrored["mirror"] == [
        {"location": "mirror-a.test"},
        {"location": "127.0.0.1:5001", "insecure": True},
    ]


def test_insecure_hosts_and_skip_verify_hosts_are_marked_insecure() -> None:
    registries = _registries()
    assert registries["127.0.0.1:5000"]["insecure"] is True
    assert registries["skip.test:443"]["insecure"] is True


def test_needs_registries_conf_cannot_express_are_named() -> None:
    _, unsupported = render_registries(SETUP)
    assert set(unsupported) == {"headers", "mirror slash.test"}


def test_auth_file_and_certificate_directory(tmp_path: Path) -> None:
    files = write_crio_files(tmp_path, SETUP, home=tmp_path / "home")
    auths = json.loads(files.auth_file.read_text())["auths"]
    assert base64.b64decode(auths["mirror-a.test"]["auth"]) == b"alice:pw"
    ca = files.certs_dir / "mirror-a.test" / "ca.crt"
    assert ca.is_symlink()
    assert str(ca.readlink()) == "/ca.pem"
    policy = json.loads(files.policy.read_text())
    assert policy == {"default": [{"type": "insecureAcceptAnything"}]}


def test_config_hook_gets_the_crio_files_beside_the_neutral_json(
    tmp_path: Path,
) -> None:
    out = tmp_path / "env.json"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os, sys\n"
        "keys = [k for k in os.environ if k.startswith('CRI_CONFORMANCE_')]\n"
        "json.dump({k: os.environ[k] for k in keys}, open(sys.argv[1], 'w'))\n"
    )
    run_config_hook(
        f"{sys.executable} {script} {out}",
        tmp_path,
        SETUP,
        TargetEnvironment(http_proxy="http://127.0.0.1:1"),
    )
    env = json.loads(out.read_text())
    assert "mirror-a.test" in Path(env["CRI_CONFORMANCE_REGISTRIES_CONF"]).read_text()
    assert Path(env["CRI_CONFORMANCE_AUTH_FILE"]).is_file()
    assert (Path(env["CRI_CONFORMANCE_CERTS_DIR"]) / "mirror-a.test").is_dir()
    assert "headers:" in env["CRI_CONFORMANCE_UNSUPPORTED"]
    setup = json.loads(Path(env["CRI_CONFORMANCE_SETUP_JSON"]).read_text())
    assert setup["insecure_hosts"] == ["127.0.0.1:5000"]
