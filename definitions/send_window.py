"""Quiet hours: when a message may go out, in the RECIPIENT's local time.

Pure functions (no I/O beyond the zoneinfo database), shared by the messaging activities and the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_zones

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# The zone that covers most of each state's population (split states take the majority zone).
STATE_ZONES = {
    "AL": "America/Chicago", "AK": "America/Anchorage", "AZ": "America/Phoenix", "AR": "America/Chicago",
    "CA": "America/Los_Angeles", "CO": "America/Denver", "CT": "America/New_York", "DE": "America/New_York",
    "DC": "America/New_York", "FL": "America/New_York", "GA": "America/New_York", "HI": "Pacific/Honolulu",
    "ID": "America/Boise", "IL": "America/Chicago", "IN": "America/Indiana/Indianapolis", "IA": "America/Chicago",
    "KS": "America/Chicago", "KY": "America/New_York", "LA": "America/Chicago", "ME": "America/New_York",
    "MD": "America/New_York", "MA": "America/New_York", "MI": "America/Detroit", "MN": "America/Chicago",
    "MS": "America/Chicago", "MO": "America/Chicago", "MT": "America/Denver", "NE": "America/Chicago",
    "NV": "America/Los_Angeles", "NH": "America/New_York", "NJ": "America/New_York", "NM": "America/Denver",
    "NY": "America/New_York", "NC": "America/New_York", "ND": "America/Chicago", "OH": "America/New_York",
    "OK": "America/Chicago", "OR": "America/Los_Angeles", "PA": "America/New_York", "RI": "America/New_York",
    "SC": "America/New_York", "SD": "America/Chicago", "TN": "America/Chicago", "TX": "America/Chicago",
    "UT": "America/Denver", "VT": "America/New_York", "VA": "America/New_York", "WA": "America/Los_Angeles",
    "WV": "America/New_York", "WI": "America/Chicago", "WY": "America/Denver", "PR": "America/Puerto_Rico",
    "VI": "America/St_Thomas", "GU": "Pacific/Guam",
}
# A phone number that maps to more zones than this (toll-free, non-geographic) says nothing useful.
_MAX_PHONE_ZONES = 3


@dataclass(frozen=True)
class SendWindow:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time

    @classmethod
    def parse(cls, days: str, start: str, end: str) -> SendWindow:
        """`mon-sat`, `mon-fri,sun`, `daily`; times as HH:MM (24h). Raises ValueError saying what is wrong."""
        chosen: set[int] = set()
        spec = days.strip().lower()
        if spec in ("daily", "every day", "all"):
            chosen = set(range(7))
        else:
            for part in filter(None, (p.strip() for p in spec.split(","))):
                first, _, last = part.partition("-")
                if first not in DAYS or (last and last not in DAYS):
                    raise ValueError(f"unknown day in {days!r}: use mon..sun, ranges like mon-fri, or daily")
                a, b = DAYS.index(first), DAYS.index(last or first)
                chosen.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        if not chosen:
            raise ValueError("a send window needs at least one day")
        opens, closes = _clock(start), _clock(end, closing=True)
        if opens >= closes:
            raise ValueError(f"send window opens at {start} but closes at {end}: opening must come first")
        return cls(frozenset(chosen), opens, closes)

    def is_open(self, at: datetime, zone: str) -> bool:
        local = at.astimezone(ZoneInfo(zone))
        return local.weekday() in self.days and self.start <= local.time() and (
            self.end == time.max or local.time() < self.end)

    def _next_open_in(self, at: datetime, zone: str) -> datetime:
        local = at.astimezone(ZoneInfo(zone))
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            if day.weekday() not in self.days:
                continue
            opens = datetime.combine(day, self.start, ZoneInfo(zone))
            closes = (datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(zone)) if self.end == time.max
                      else datetime.combine(day, self.end, ZoneInfo(zone)))  # 24:00: up to the next midnight
            if local < opens:
                return opens.astimezone(at.tzinfo)
            if local < closes:
                return at
        raise AssertionError("unreachable: a window has at least one day a week")

    def next_opening(self, now: datetime, zones: list[str]) -> datetime:
        """The first moment at or after `now` when the window is open in every one of `zones`."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        candidate = now
        for _ in range(64):
            later = max(self._next_open_in(candidate, z) for z in zones)
            if later == candidate:
                return candidate
            candidate = later
        raise ValueError("the send window is never open in all of the recipient's possible zones")


CLOCK = r"([01]\d|2[0-3]):[0-5]\d"  # HH:MM, 00:00-23:59


def _clock(value: str, closing: bool = False) -> time:
    """HH:MM; a window may close at 24:00 (the end of the day: "00:00"–"24:00" is open all day, where a close
    at 23:59 would hold messages for the day's last minute)."""
    if closing and value.strip() == "24:00":
        return time.max
    if not re.fullmatch(CLOCK, value.strip()):
        raise ValueError(f"{value!r} is not a time like 08:00" + (" (or 24:00, the end of the day)" if closing else ""))
    hours, minutes = value.strip().split(":")
    return time(int(hours), int(minutes))


def recipient_zones(phone: str | None, state: str | None, fallback: str) -> tuple[list[str], str]:
    """The recipient's candidate zones and where they came from: phone region, property state, or tenant."""
    if phone:
        try:
            zones = [z for z in phone_zones.time_zones_for_number(phonenumbers.parse(phone))
                     if z != phone_zones.UNKNOWN_TIMEZONE]
        except phonenumbers.NumberParseException:
            zones = []
        if 1 <= len(zones) <= _MAX_PHONE_ZONES:
            if state and STATE_ZONES.get(state) in zones:
                return [STATE_ZONES[state]], "phone+state"
            return sorted(zones), "phone"
    if state and state in STATE_ZONES:
        return [STATE_ZONES[state]], "state"
    return [fallback], "tenant"
