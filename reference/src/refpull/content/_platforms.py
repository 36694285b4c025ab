"""OCI platforms: normalization and containerd's ``platforms.Only`` matching (PULL-001).

Source: containerd ``platforms/database.go`` (``normalizeArch``) and ``platforms/compare.go``
(``platformVector``, ``Only``) at 1.6.20; the seed's narrower matching is a profile switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refpull.profiles import Profile

__all__ = ["Platform", "matches", "matches_exactly", "platform_vector"]


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    # containerd platforms/database.go normalizeArch (behaviors.md PULL-001).
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


@dataclass(frozen=True, kw_only=True)
class Platform:
    """An OCI platform (``os``/``architecture``/``variant``...)."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    @classmethod
    def default(cls) -> Platform:
        """The platform the reference pulls for: ``linux/amd64`` (the CI host's)."""
        return cls(os="linux", architecture="amd64")

    def normalized(self) -> Platform:
        """Lower-case the OS and canonicalise the architecture (``x86_64`` -> ``amd64``)."""
        os_name = self.os.lower()
        if os_name == "macos":
            os_name = "darwin"
        arch, variant = _normalize_arch(self.architecture, self.variant or "")
        return Platform(
            os=os_name,
            architecture=arch,
            variant=variant or None,
            os_version=self.os_version,
            os_features=self.os_features,
        )

    def to_json(self) -> dict[str, Any]:
        """The OCI JSON object (Go field order)."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out


def platform_vector(host: Platform, profile: Profile) -> list[Platform]:
    """The ordered platforms ``platforms.Only(host)`` accepts (behaviors.md PULL-001).

    Args:
        host: the platform pulled for.
        profile: ``amd64_platform_fallbacks`` adds amd64 variant fallbacks and 386.

    Returns:
        The preference vector, best first.
    """
    host = host.normalized()
    vector = [host]
    variant = (host.variant or "").removeprefix("v")
    if host.architecture == "amd64" and profile.amd64_platform_fallbacks:
        # containerd PR #6455 (1.6.0): amd64/vN also accepts vN-1..v1; PR #4528 (1.5.0): 386.
        if variant.isdigit() and int(variant) > 1:
            for n in range(int(variant) - 1, 0, -1):
                vector.append(_with(host, host.architecture, "" if n == 1 else f"v{n}"))
        vector.append(_with(host, "386", ""))
    elif host.architecture == "arm" and variant.isdigit() and int(variant) > 5:
        vector += [_with(host, "arm", f"v{n}") for n in range(int(variant) - 1, 4, -1)]
    elif host.architecture == "arm64":
        arm = _with(host, "arm", f"v{variant or '8'}")
        vector += platform_vector(arm, profile)
    return vector


def _with(host: Platform, arch: str, variant: str) -> Platform:
    return Platform(
        os=host.os,
        architecture=arch,
        variant=variant or None,
        os_version=host.os_version,
        os_features=host.os_features,
    )


def matches(want: Platform, got: Platform, profile: Profile) -> bool:
    """True when index entry *got* satisfies the (normalized) wanted platform."""
    got = got.normalized()
    if want.os != got.os or want.architecture != got.architecture:
        return False
    if want.architecture == "amd64" and not profile.amd64_platform_fallbacks:
        # behaviors.md PULL-001: the seed matches amd64 entries variant-insensitively.
        return True
    return (want.variant or "") == (got.variant or "")


def matches_exactly(host: Platform, got: Platform) -> bool:
    """``platforms.NewMatcher(host).Match(got)``: OS, architecture and variant all equal.

    containerd 2.3's transfer service filters index entries so (``platforms.Ordered`` of
    the host's ``DefaultSpec``; behaviors.md PULL-001): no 386 or amd64 variant fallback.
    """
    want, got = host.normalized(), got.normalized()
    return (want.os, want.architecture, want.variant or "") == (
        got.os,
        got.architecture,
        got.variant or "",
    )
