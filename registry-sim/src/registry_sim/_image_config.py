"""Image configuration and platform: the inputs every builder shares."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NONCE_LABEL", "Config", "Platform", "RecipeError", "to_json_bytes"]

NONCE_LABEL = "io.registry-sim.nonce"


def to_json_bytes(obj: object) -> bytes:
    """Serialize like docker's MarshalIndent: 3-space indent, key order as built."""
    return json.dumps(obj, indent=3).encode()


@dataclass(frozen=True)
class Platform:
    """An index entry's platform (image-spec image-index.md)."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``platform`` object, optional fields only when set."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class Config:
    """An image configuration; ``rootfs.diff_ids`` come from the layers at build."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",)
    cmd: tuple[str, ...] = ("sh",)
    entrypoint: tuple[str, ...] = ()
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    nonce: str | None = None
    created: str = "1970-01-01T00:00:00Z"

    @property
    def platform(self) -> Platform:
        """The platform this config describes."""
        return Platform(self.os, self.architecture, self.variant)

    def container_config(self) -> dict[str, Any]:
        """The ``config`` object (Env, Cmd, Entrypoint, Labels incl. the nonce)."""
        labels = dict(sorted(self.labels.items()))
        if self.nonce is not None:
            labels[NONCE_LABEL] = self.nonce  # a per-test unique image ID
        out: dict[str, Any] = {"Env": list(self.env), "Cmd": list(self.cmd)}
        if self.user:
            out["User"] = self.user
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if labels:
            out["Labels"] = labels
        return out

    def to_bytes(self, diff_ids: Sequence[str]) -> bytes:
        """The config JSON for layers with these ``diff_ids`` (base first)."""
        doc: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            doc["variant"] = self.variant
        doc["created"] = self.created
        doc["config"] = self.container_config()
        doc["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
        doc["history"] = [
            {"created": self.created, "created_by": f"registry-sim layer {i}"}
            for i in range(len(diff_ids))
        ]
        return to_json_bytes(doc)


class RecipeError(ValueError):
    """An image recipe is malformed (unknown kind, bad layer spec...)."""
