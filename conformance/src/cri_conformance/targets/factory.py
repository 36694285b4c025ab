"""Build the target named by ``--target`` for a session's world."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
from functools import partial
from pathlib import Path

from cri_conformance.targets.base import RegistrySetup, Target, TargetEnvironment

__all__ = ["TARGET_KINDS", "make_target", "run_config_hook"]

TARGET_KINDS = ("reference", "reference-grpc", "cri", "containerd", "crio")


def make_target(
    kind: str,
    *,
    profile: str,
    workdir: Path,
    setup: RegistrySetup,
    environment: TargetEnvironment,
    cri_endpoint: str | None = None,
    cri_api: str = "auto",
    containerd_bin: str = "containerd",
    crio_bin: str | None = None,
    cri_config_hook: str | None = None,
    containerd_generation: str | None = None,
    registry_config_style: str | None = None,
) -> Target:
    """Start (or connect to) the target under test.

    Raises:
        ValueError: an unknown kind or a missing ``--cri-endpoint``.
        FileNotFoundError: a managed runtime's binary is not installed.
    """
    if kind == "reference":
        from cri_conformance.targets.reference import ReferenceTarget

        return ReferenceTarget(
            root=workdir / "reference-root",
            profile=profile,
            setup=setup,
            environment=environment,
            config_style=registry_config_style,
        )
    if kind == "reference-grpc":
        from cri_conformance.targets.reference import ReferenceGrpcTarget

        return ReferenceGrpcTarget(
            workdir=workdir / "reference-grpc",
            profile=profile,
            setup=setup,
            environment=environment,
            config_style=registry_config_style,
        )
    if kind == "containerd":
        from cri_conformance.targets.containerd import ContainerdTarget
        from cri_conformance.targets.containerd_config import GENERATIONS

        generation = (
            GENERATIONS[containerd_generation] if containerd_generation else None
        )
        return ContainerdTarget(
            binary=containerd_bin,
            profile=profile,
            environment=environment,
            setup=setup,
            generation=generation,
            config_style=registry_config_style,
        )
    if kind == "crio":
        from cri_conformance.targets.crio import CrioTarget

        if not crio_bin:
            raise ValueError(
                "--target crio needs --crio-bin PATH (or --runtime crio-1.36.3): build "
                "it with 'python -m cri_conformance.runtimes build crio-1.36.3 "
                "--upstream DIR'"
            )
        return CrioTarget(
            binary=crio_bin, profile=profile, environment=environment, setup=setup
        )
    if kind == "cri":
        from cri_conformance.targets.cri import CRITarget

        if not cri_endpoint:
            raise ValueError("--target cri needs --cri-endpoint unix:///path/to.sock")
        hook = None
        if cri_config_hook:
            hook = partial(
                run_config_hook, cri_config_hook, workdir, setup, environment
            )
        return CRITarget(cri_endpoint, profile=profile, api=cri_api, config_hook=hook)
    raise ValueError(f"unknown target {kind!r} (one of {', '.join(TARGET_KINDS)})")


def run_config_hook(
    command: str, workdir: Path, setup: RegistrySetup, environment: TargetEnvironment
) -> None:
    """Hand the session's registry setup to the user's runtime through *command*.

    The hook gets a containerd ``config.toml`` (version 2) holding the setup's
    registry section as tables, the proxy URL and the CA bundle, in
    ``CRI_CONFORMANCE_CONFIG``, ``CRI_CONFORMANCE_PROXY`` and
    ``CRI_CONFORMANCE_CA_FILE``; the same registries as a ``config_path`` directory of
    ``<namespace>/hosts.toml`` files in ``CRI_CONFORMANCE_HOSTS_DIR``; and the neutral
    setup as JSON (``RegistrySetup``'s fields) in the file ``CRI_CONFORMANCE_SETUP_JSON``.
    For CRI-O and other containers/image runtimes: ``CRI_CONFORMANCE_REGISTRIES_CONF``
    (registries.conf v2), ``CRI_CONFORMANCE_CERTS_DIR`` (``<host>/ca.crt``,
    ``client.cert``, ``client.key``), ``CRI_CONFORMANCE_AUTH_FILE`` (auth.json),
    ``CRI_CONFORMANCE_POLICY`` (policy.json) and, in ``CRI_CONFORMANCE_UNSUPPORTED``,
    one line per need registries.conf cannot express.

    Raises:
        RuntimeError: the hook failed (its output is in the message).
    """
    from cri_conformance.targets.containerd import render_config
    from cri_conformance.targets.containerd_config import hosts_files

    config = workdir / "cri-config-hook.toml"
    config.write_text(render_config(workdir, setup, version=2))
    hosts_dir = workdir / "cri-config-hook.d"
    for namespace, text in hosts_files(setup).items():
        (hosts_dir / namespace).mkdir(parents=True, exist_ok=True)
        (hosts_dir / namespace / "hosts.toml").write_text(text)
    setup_json = workdir / "cri-config-hook.json"
    setup_json.write_text(json.dumps(dataclasses.asdict(setup), indent=2) + "\n")
    from cri_conformance.targets._crioconf import write_crio_files

    crio_dir = workdir / "cri-config-hook.crio"
    crio_dir.mkdir(exist_ok=True)
    crio = write_crio_files(crio_dir, setup, home=crio_dir / "home")
    env = dict(os.environ)
    env["CRI_CONFORMANCE_REGISTRIES_CONF"] = str(crio.registries_conf)
    env["CRI_CONFORMANCE_CERTS_DIR"] = str(crio.certs_dir)
    env["CRI_CONFORMANCE_AUTH_FILE"] = str(crio.auth_file)
    env["CRI_CONFORMANCE_POLICY"] = str(crio.policy)
    env["CRI_CONFORMANCE_UNSUPPORTED"] = "\n".join(
        f"{need}: {why}" for need, why in sorted(crio.unsupported.items())
    )
    env["CRI_CONFORMANCE_CONFIG"] = str(config)
    env["CRI_CONFORMANCE_HOSTS_DIR"] = str(hosts_dir)
    env["CRI_CONFORMANCE_SETUP_JSON"] = str(setup_json)
    env["CRI_CONFORMANCE_PROXY"] = environment.http_proxy or ""
    env["CRI_CONFORMANCE_CA_FILE"] = environment.ca_bundle or ""
    done = subprocess.run(
        shlex.split(command), env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"--cri-config-hook {command!r} failed with {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()[-2000:]}"
        )
