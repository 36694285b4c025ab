"""cri_conformance: the CRI image-pull conformance suite, its targets and its report."""

from __future__ import annotations

__all__: list[str] = []
