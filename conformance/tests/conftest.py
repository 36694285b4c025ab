"""Harness self-tests: pytester drives tiny suites through the cri_conformance plugin."""

from __future__ import annotations

pytest_plugins = ["pytester"]
