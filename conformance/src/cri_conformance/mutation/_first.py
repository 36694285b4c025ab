"""A pytest plugin for mutant runs: check which refpull is imported, run the likely killers first.

Loaded with ``-p cri_conformance.mutation._first`` by the mutation runner only.
``--mutation-src DIR`` makes the run a usage error unless ``refpull`` is imported from
*DIR* (so an installed refpull can never stand in for the mutated copy).
``--mutation-first ID`` moves the tests tagged with behaviour *ID* (then those of its
area) to the front; with ``-x`` a killed mutant stops early. Ordering never changes
which tests run, so a mutant is killed exactly when the whole suite would fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = [
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mutation", "mutation runs (cri_conformance.mutation)")
    group.addoption(
        "--mutation-src", help="refpull must be imported from this directory"
    )
    group.addoption("--mutation-first", help="run the tests of this behaviour ID first")


def pytest_configure(config: pytest.Config) -> None:
    wanted = config.getoption("mutation_src")
    if not wanted:
        return
    import refpull  # the copy under test, if PYTHONPATH won

    where = Path(refpull.__file__).resolve()
    if not where.is_relative_to(Path(wanted).resolve()):
        raise pytest.UsageError(
            f"refpull was imported from {where}, not from the mutated copy {wanted}; "
            "put the copy first on PYTHONPATH"
        )


def _rank(item: pytest.Item, behavior: str) -> int:
    ids = [i for mark in item.iter_markers("behavior") for i in mark.args]
    if behavior in ids:
        return 0
    area = behavior.split("-", 1)[0] + "-"
    if any(isinstance(i, str) and i.startswith(area) for i in ids):
        return 1
    return 2


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    behavior = config.getoption("mutation_first")
    if behavior:
        items.sort(key=lambda item: _rank(item, behavior))  # stable: file order kept
