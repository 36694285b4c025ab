"""Differential mode (``--compare-with reference``): generated cases, target vs reference.

Collected only when the option is given (see ``conftest.py``). Every example pushes one
generated image to two repositories and pulls it through the target and through the
in-process reference under the same profile; any observable difference fails with
both observations, and Hypothesis shrinks it to a minimal case.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cri_conformance.differential import observe
from cri_conformance.targets.base import Target
from cri_conformance.world import World
from registry_sim.images import Config, Image, Index, Layer

_counter = itertools.count()

USERS = st.sampled_from(["", "1000", "1000:1000", "app", "app:grp", ":1", "0x10"])
TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True)


@st.composite
def images(draw: st.DrawFn) -> tuple[object, str]:
    """A small schema2/OCI image or index, and the image ID a puller must report."""
    seed = draw(st.integers(0, 2**32))
    layers = [
        Layer.random(draw(st.integers(1, 4096)), seed=f"diff-{seed}-{i}")
        for i in range(draw(st.integers(0, 3)))
    ]
    config = Config(user=draw(USERS))
    nonce = f"diff-{seed}-{next(_counter)}"
    build = Image.oci if draw(st.booleans()) else Image.schema2
    image = build(layers, config, nonce=nonce)
    if draw(st.booleans()):
        other = build(layers, Config(architecture="arm64"), nonce=nonce + "-arm")
        entries = [image, other] if draw(st.booleans()) else [other, image]
        index = Index.oci(entries) if build is Image.oci else Index.docker_list(entries)
        return index, image.config_digest
    return image, image.config_digest


FORMS = st.sampled_from(["tag", "digest", "tag+digest"])


@pytest.mark.behavior("CRI-001", "CRI-002", "STORE-004", "PULL-001", "RES-001")
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(built=images(), tag=TAGS, form=FORMS)
def test_target_and_reference_agree_on_generated_pulls(
    world: World,
    target: Target,
    reference_twin: Target,
    built: tuple[object, str],
    tag: str,
    form: str,
) -> None:
    """A generated pull looks the same on the target and on the reference."""
    image, _image_id = built
    n = next(_counter)
    repos = (f"diff/target-{n}", f"diff/reference-{n}")
    digest = ""
    for repo in repos:
        digest = world.sim.push(image, f"{repo}:{tag}")  # type: ignore[arg-type]
    registry = world.sim.host_port
    suffix = {
        "tag": f":{tag}",
        "digest": f"@{digest}",
        "tag+digest": f":{tag}@{digest}",
    }
    seen = [
        observe(
            runtime,
            world,
            image=f"{registry}/{repo}{suffix[form]}",
            repo=repo,
            registry=registry,
        )
        for runtime, repo in zip((target, reference_twin), repos, strict=True)
    ]
    assert seen[0] == seen[1], (
        f"target:\n{seen[0].summary()}\nreference:\n{seen[1].summary()}"
    )
