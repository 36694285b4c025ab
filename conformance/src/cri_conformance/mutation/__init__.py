"""The mutation gate: how many realistic bugs planted in refpull the suite catches.

``conformance/mutants/*.toml`` holds the mutants (format in :mod:`.mutants`);
``python -m cri_conformance.mutation`` (``tox -e mutation``) runs the suite against
each of them (:mod:`.runner`) and prints the kill rate and every survivor
(:mod:`.report`).
"""

from __future__ import annotations

from cri_conformance.mutation.mutants import (
    Mutant,
    MutantError,
    apply_mutant,
    check_mutants,
    load_mutants,
    select_mutants,
)

__all__ = [
    "Mutant",
    "MutantError",
    "apply_mutant",
    "check_mutants",
    "load_mutants",
    "select_mutants",
]
