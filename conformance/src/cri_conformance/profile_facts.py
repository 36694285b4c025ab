"""Per-profile facts the suite branches on, read from ``fixtures/vectors/profiles.json``.

The suite never asks refpull which generation does what (that would be a circular
oracle: a bug in the reference's profile table would move the expectation with it).
The table is data, stated per behaviour; ``conformance/tests/test_suite_independence.py``
checks that refpull's profiles agree with it.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from cri_conformance.catalog import fixtures_dir

__all__ = ["profile_fact"]


@functools.cache
def _table() -> dict[str, Any]:
    path = fixtures_dir() / "vectors" / "profiles.json"
    facts: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["facts"]
    return facts


def profile_fact(profile: str, name: str) -> bool:
    """Whether profile *profile* has fact *name* (e.g. ``record_after_unpack``).

    Raises:
        KeyError: an unknown fact or a profile the table does not state it for
            (add it to fixtures/vectors/profiles.json).
    """
    fact = _table()[name]
    values: dict[str, bool] = fact["values"]
    if profile not in values:
        raise KeyError(
            f"fixtures/vectors/profiles.json states {name} ({fact['behavior']}) "
            f"for {sorted(values)}, not for {profile!r}; add it there"
        )
    return values[profile]
