"""Go ``time.Time`` as ``encoding/json`` reads and writes it (go1.19.8 rules).

Reading is ``time.Parse(`"`+RFC3339+`"`, …)``, which before Go 1.20 is lenient: a one-digit
hour, a ``,`` or ``.`` fraction of any length (truncated to nanoseconds) and offsets that
are not range-checked all pass. Writing is ``RFC3339Nano``: trailing zeros of the fraction
trimmed, ``Z`` for a zero offset, the original offset otherwise (behaviors.md S1-008;
checked against Debian containerd 1.6.20).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["LAYOUT", "GoTime", "GoTimeError", "parse_time"]


class GoTimeError(ValueError):
    """A time string Go's parser rejects."""


@dataclass(frozen=True)
class GoTime:
    """A ``time.Time`` value: wall clock fields plus the UTC offset in minutes."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    nanosecond: int
    offset_minutes: int

    @classmethod
    def zero(cls) -> GoTime:
        """Go's zero time, ``0001-01-01T00:00:00Z``."""
        return cls(1, 1, 1, 0, 0, 0, 0, 0)

    def format(self) -> str:
        """Format as Go's ``RFC3339Nano`` (``MarshalJSON``): fraction trimmed, ``Z`` at 0."""
        frac = ""
        if self.nanosecond:
            frac = "." + f"{self.nanosecond:09d}".rstrip("0")
        if self.offset_minutes == 0:
            zone = "Z"
        else:
            sign = "-" if self.offset_minutes < 0 else "+"
            off = abs(self.offset_minutes)
            zone = f"{sign}{off // 60:02d}:{off % 60:02d}"
        return (
            f"{self.year:04d}-{self.month:02d}-{self.day:02d}T"
            f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}{frac}{zone}"
        )


# Go 1.19 time.Parse with RFC3339 is lenient: the hour may have one digit, a fraction may
# follow the seconds (',' or '.'), offsets are not range-checked.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:(Z)|([+-])(\d{2}):(\d{2}))"
)
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
LAYOUT = '"2006-01-02T15:04:05Z07:00"'


def parse_time(raw: str) -> GoTime:
    """Parse a JSON string value as Go 1.19 ``time.Time.UnmarshalJSON`` would.

    Raises:
        GoTimeError: ``parsing time ...`` on any mismatch.
    """
    m = _RFC3339.fullmatch(raw)
    quoted = json.dumps('"' + raw + '"', ensure_ascii=False)
    if m is None:
        raise GoTimeError(
            f"parsing time {quoted} as {json.dumps(LAYOUT)}: cannot parse"
        )
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    days = _DAYS[month - 1] if 1 <= month <= 12 else 0
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        days = 29
    for ok, what in (
        (1 <= month <= 12, "month"),
        (1 <= day <= days or not 1 <= month <= 12, "day"),
        (hour < 24, "hour"),
        (minute < 60, "minute"),
        (second < 60, "second"),
    ):
        if not ok:
            raise GoTimeError(f"parsing time {quoted}: {what} out of range")
    digits = (m.group(7) or "")[:9]
    nanos = int(digits.ljust(9, "0")) if digits else 0
    offset = 0
    if m.group(9):
        offset = int(m.group(10)) * 60 + int(m.group(11))
        if m.group(9) == "-":
            offset = -offset
    return GoTime(year, month, day, hour, minute, second, nanos, offset)
