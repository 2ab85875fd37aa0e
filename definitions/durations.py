"""Durations as the definition language and the pipelines write them: `30s`, `15m`, `2h`, `3d`, `1w`."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `2h`, `3d`, `1w` (raises ValueError)."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h, 3d or 1w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
