"""The pull-limit flags shared by ``refpull pull`` and ``refpull serve`` (budget.py)."""

from __future__ import annotations

import argparse

from refpull.budget import TransferLimits

__all__ = ["add_limit_arguments", "limits_from_args"]

_DEFAULTS = TransferLimits()


def _positive(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; use 0 for no limit")
    return value


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--pull-timeout``, ``--min-rate`` and ``--min-rate-window``."""
    parser.add_argument(
        "--pull-timeout",
        metavar="SECONDS",
        type=_positive,
        default=_DEFAULTS.pull_timeout,
        help="longest a whole pull may take; 0 = no limit "
        f"(default: {_DEFAULTS.pull_timeout:g})",
    )
    parser.add_argument(
        "--min-rate",
        metavar="BYTES",
        type=_positive,
        default=_DEFAULTS.min_rate,
        help="bytes per second a transfer must reach, measured over --min-rate-window "
        f"seconds of waiting; 0 = no rule (default: {_DEFAULTS.min_rate})",
    )
    parser.add_argument(
        "--min-rate-window",
        metavar="SECONDS",
        type=_positive,
        default=_DEFAULTS.min_rate_window,
        help="seconds over which --min-rate is measured; also the longest silence "
        f"tolerated (default: {_DEFAULTS.min_rate_window:g})",
    )


def limits_from_args(args: argparse.Namespace) -> TransferLimits:
    """The :class:`TransferLimits` the flags of :func:`add_limit_arguments` name."""
    return TransferLimits(
        pull_timeout=args.pull_timeout or None,
        min_rate=int(args.min_rate),
        min_rate_window=args.min_rate_window or _DEFAULTS.min_rate_window,
    )
