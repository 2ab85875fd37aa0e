"""Day 0 of a dry run on the wall clock of the sample's zone, and the simulated wait until it, across the US
daylight-saving changes (the wait used to be a difference of two clock readings: an hour off across a change)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.dry_run import day_zero


@pytest.mark.parametrize("now, weekday, expected_start, expected_wait", [
    # Wednesday 10 March 2027, noon in New York; the clocks go forward on Sunday the 14th.
    (datetime(2027, 3, 10, 17, 0, tzinfo=UTC), 0, "2027-03-15 09:00-04:00", timedelta(days=4, hours=20)),
    # Wednesday 3 November 2027; the clocks go back on Sunday the 7th.
    (datetime(2027, 11, 3, 16, 0, tzinfo=UTC), 0, "2027-11-08 09:00-05:00", timedelta(days=4, hours=22)),
    # No change in between: the next morning.
    (datetime(2026, 12, 3, 14, 7, tzinfo=UTC), None, "2026-12-04 09:00-05:00", timedelta(hours=23, minutes=53)),
    # Before 09:00 the same day is day 0.
    (datetime(2026, 12, 3, 12, 0, tzinfo=UTC), None, "2026-12-03 09:00-05:00", timedelta(hours=2)),
])
def test_day_zero_is_the_next_start_at_on_the_zones_wall_clock(now, weekday, expected_start, expected_wait):
    start, wait = day_zero(now, "America/New_York", "09:00", weekday)
    assert start.isoformat(" ", "minutes") == expected_start
    assert wait == expected_wait
    assert (now + wait).astimezone(start.tzinfo).strftime("%H:%M") == "09:00"  # where the simulated clock lands


def test_a_start_time_and_weekday_in_a_zone_without_daylight_saving():
    start, wait = day_zero(datetime(2027, 3, 10, 17, 0, tzinfo=UTC), "America/Phoenix", "10:30", 5)
    assert f"{start:%a} {start.isoformat(' ', 'minutes')}" == "Sat 2027-03-13 10:30-07:00"
    assert wait == timedelta(days=3, minutes=30)  # from 10:00 on Wednesday


def test_a_start_time_the_clocks_skip_reads_as_the_time_it_lands():
    # 02:30 does not exist on Sunday 14 March 2027 in New York (02:00 -> 03:00)
    start, wait = day_zero(datetime(2027, 3, 13, 17, 0, tzinfo=UTC), "America/New_York", "02:30")
    assert start.isoformat(" ", "minutes") == "2027-03-14 03:30-04:00"
    assert datetime(2027, 3, 13, 17, 0, tzinfo=UTC) + wait == start
