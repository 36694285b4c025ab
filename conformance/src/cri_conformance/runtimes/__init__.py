"""Real runtimes built from source for grading: recipes (data) and the cached build."""

from __future__ import annotations

from cri_conformance.runtimes.build import BuildError, Built, build, default_cache_dir
from cri_conformance.runtimes.recipes import RECIPES, Recipe, get_recipe

__all__ = [
    "RECIPES",
    "BuildError",
    "Built",
    "Recipe",
    "build",
    "default_cache_dir",
    "get_recipe",
]
