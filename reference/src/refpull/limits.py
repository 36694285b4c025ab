"""How much a registry may make a pull hold, inflate or follow (PULL-014, PULL-015, TOKEN-010).

containerd has none of these limits: a 1 MiB gzip layer inflates to 1 GiB on disk, a
token response is read whole into memory, an index may name an index a thousand times
over, a manifest may list ten thousand layers. The reference refuses each, with an error
that names the limit and the flag that raises it. One frozen :class:`Limits` is given to
the :class:`~refpull.pull.puller.Puller` and passed down to the code that enforces each field.

Deviation (security, every profile): containerd v1.6.20 and later enforce none of these.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from refpull.errors import PullError

__all__ = [
    "DEFAULT_LIMITS",
    "LimitExceeded",
    "Limits",
    "add_content_limit_arguments",
    "content_limits_from_args",
]

_MIB = 1 << 20
_GIB = 1 << 30


class LimitExceeded(PullError):
    """Content passed one of the :class:`Limits`; ``flag`` raises it."""

    def __init__(self, what: str, *, limit: int, flag: str) -> None:
        self.limit = limit
        self.flag = flag
        super().__init__(f"{what} exceeds the limit of {limit} (raise it with {flag})")


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds on what a registry's content may cost (``refpull pull``/``serve`` flags).

    Attributes:
        max_layer_size: bytes one layer may inflate to (``--max-layer-size``).
        max_image_size: bytes the layers one pull applies may inflate to together
            (``--max-image-size``): many small bombs add up.
        max_layer_ratio: inflated/compressed size a layer may reach once it has
            inflated past *ratio_floor* (``--max-layer-ratio``); real layers stay
            under 20, deflate's ceiling is about 1030.
        ratio_floor: inflated bytes below which the ratio is not judged, so tiny
            layers of zeros pass (``--ratio-floor``).
        max_token_bytes: size of a token server's response body (``--max-token-bytes``).
        max_error_body_bytes: bytes of a registry error body read (``--max-error-body``).
        max_index_depth: indexes nested inside the root index (``--max-index-depth``).
        max_layers: layers one image may have (``--max-layers``).
        max_name_length: characters of an image reference (``--max-name-length``).
    """

    max_layer_size: int = 16 * _GIB
    max_image_size: int = 32 * _GIB
    max_layer_ratio: int = 250
    ratio_floor: int = 64 * _MIB
    max_token_bytes: int = 1 * _MIB
    max_error_body_bytes: int = 64 * 1024
    max_index_depth: int = 4
    max_layers: int = 500
    max_name_length: int = 4096

    def inflate_bound(self, compressed_size: int) -> tuple[int, str]:
        """The most a layer of *compressed_size* bytes may inflate to, and its flag."""
        by_ratio = max(self.ratio_floor, self.max_layer_ratio * compressed_size)
        if by_ratio < self.max_layer_size:
            return by_ratio, "--max-layer-ratio"
        return self.max_layer_size, "--max-layer-size"

    def check_layers(self, count: int) -> None:
        """Raise :class:`LimitExceeded` when an image lists more than *max_layers*."""
        if count > self.max_layers:
            what = f"an image of {count} layers"
            raise LimitExceeded(what, limit=self.max_layers, flag="--max-layers")

    def check_index_depth(self, depth: int) -> None:
        """Raise :class:`LimitExceeded` for an index nested *depth* levels deep."""
        if depth > self.max_index_depth:
            what = f"an index nested {depth} levels deep"
            raise LimitExceeded(
                what, limit=self.max_index_depth, flag="--max-index-depth"
            )


DEFAULT_LIMITS = Limits()

_FLAGS = {
    "max_layer_size": ("--max-layer-size", "bytes one layer may inflate to"),
    "max_image_size": ("--max-image-size", "bytes an image's layers inflate to"),
    "max_layer_ratio": ("--max-layer-ratio", "inflated/compressed size of a layer"),
    "ratio_floor": ("--ratio-floor", "inflated bytes below which no ratio is judged"),
    "max_token_bytes": ("--max-token-bytes", "size of a token response body"),
    "max_error_body_bytes": ("--max-error-body", "bytes of a registry error body read"),
    "max_index_depth": ("--max-index-depth", "indexes nested in the root index"),
    "max_layers": ("--max-layers", "layers one image may have"),
    "max_name_length": ("--max-name-length", "characters of an image reference"),
}


def _count(text: str) -> int:
    value = int(text, 0)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a limit must be a positive number")
    return value


def add_content_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per :class:`Limits` field (``--max-layer-size`` …)."""
    group = parser.add_argument_group("content limits (a hostile registry)")
    for field in fields(Limits):
        flag, text = _FLAGS[field.name]
        default = getattr(DEFAULT_LIMITS, field.name)
        group.add_argument(
            flag,
            dest=field.name,
            metavar="N",
            type=_count,
            default=default,
            help=f"{text} (default: {default})",
        )


def content_limits_from_args(args: argparse.Namespace) -> Limits:
    """The :class:`Limits` the flags of :func:`add_content_limit_arguments` name."""
    return Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
