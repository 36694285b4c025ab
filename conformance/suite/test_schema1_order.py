"""Schema1 layers are fetched base first (S1-006): the order downloads start in.

containerd dispatches a manifest's children through one limiter of
``max_concurrent_downloads`` (3 by default, as the suite configures every runtime),
acquiring a slot in list order before each download starts. The schema1 converter
lists the layers base first, so with every blob held for a second the first three
downloads are the three base-most layers and the top two wait for a free slot. A
converter that lists them top-most first starts the top three instead. The order
*within* a wave is scheduling and is not asserted; the waves are a second apart.
"""

from __future__ import annotations

import pytest

from cri_conformance.scenario import Case
from registry_sim.faults import Delay, Fault, Match
from registry_sim.images import Schema1

#: containerd's default ``max_concurrent_downloads`` (the suite leaves it unset).
SLOTS = 3


@pytest.mark.behavior("S1-006")
def test_schema1_layers_start_downloading_base_first(case: Case) -> None:
    """Five held layers: the three base-most are fetched first, the top two after."""
    if case.since("containerd-2.0"):
        pytest.skip(
            f"unsupported: {case.profile} refuses schema1 manifests (S1-001; "
            "test_schema1_pull_follows_the_profile shows it)"
        )
    layers = [case.layer(i) for i in range(5)]  # base first
    s1 = Schema1.signed(layers, name=case.repo, tag="1", nonce=case.nonce)
    case.push(s1, "1")
    case.world.add_fault(Fault(Match(method="GET", path="/blobs/"), Delay(1.0)))
    assert case.pull(case.ref("1")).startswith("sha256:")
    position = {layer.digest: i for i, layer in enumerate(layers)}
    done = sorted(
        (ex for ex in case.exchanges() if ex.method == "GET" and "/blobs/" in ex.path),
        key=lambda ex: ex.time,
    )
    order = [position[ex.path.rsplit("/", 1)[1]] for ex in done]
    assert sorted(order) == [0, 1, 2, 3, 4], case.journal_text()
    assert set(order[:SLOTS]) == {0, 1, 2}, order
    assert set(order[SLOTS:]) == {3, 4}, order
