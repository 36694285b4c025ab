"""registry_sim: a registry that can be anything a conformance test needs.

The public API is re-exported here; ``__all__`` is sorted and checked by a test.
"""

from __future__ import annotations

__all__: list[str] = []
