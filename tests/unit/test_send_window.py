from datetime import UTC, datetime

import pytest

from definitions.send_window import SendWindow, recipient_zones

WINDOW = SendWindow.parse("mon-sat", "08:00", "20:00")


def test_lead_at_23h_local_waits_for_08h_next_morning():
    # Tuesday 2026-12-01 23:00 in Austin (America/Chicago, UTC-6) = Wednesday 05:00 UTC.
    now = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    opens = WINDOW.next_opening(now, ["America/Chicago"])
    assert opens == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # Wednesday 08:00 in Chicago


def test_open_window_sends_now():
    now = datetime(2026, 12, 2, 16, 30, tzinfo=UTC)  # 10:30 in Chicago
    assert WINDOW.next_opening(now, ["America/Chicago"]) == now


def test_saturday_evening_waits_until_monday():
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)  # Saturday 21:00 in Chicago
    assert WINDOW.next_opening(now, ["America/Chicago"]) == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def test_several_zones_wait_until_open_in_all():
    now = datetime(2026, 12, 2, 13, 30, tzinfo=UTC)  # 08:30 New York, 04:30 Anchorage
    opens = WINDOW.next_opening(now, ["America/Anchorage", "America/New_York"])
    assert opens == datetime(2026, 12, 2, 17, 0, tzinfo=UTC)  # 08:00 in Anchorage, 12:00 in New York


def test_daylight_saving_change_is_respected():
    # Sunday 2026-03-08 is the US spring-forward day; Monday 08:00 CDT is 13:00 UTC (not 14:00).
    now = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)
    assert WINDOW.next_opening(now, ["America/Chicago"]) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("days, start, end, message", [
    ("mon-funday", "08:00", "20:00", "unknown day"),
    ("mon-fri", "8am", "20:00", "is not a time"),
    ("mon-fri", "20:00", "08:00", "opening must come first"),
])
def test_bad_windows_say_what_is_wrong(days, start, end, message):
    with pytest.raises(ValueError, match=message):
        SendWindow.parse(days, start, end)


def test_wrapping_day_ranges_and_daily():
    assert SendWindow.parse("fri-mon", "08:00", "09:00").days == frozenset({4, 5, 6, 0})
    assert SendWindow.parse("daily", "08:00", "09:00").days == frozenset(range(7))


def test_recipient_zone_sources():
    assert recipient_zones("+15125550142", None, "America/New_York") == (["America/Chicago"], "phone")
    assert recipient_zones("+19075550100", None, "America/New_York") == (
        ["America/Adak", "America/Anchorage"], "phone")
    assert recipient_zones("+19075550100", "AK", "UTC") == (["America/Anchorage"], "phone+state")
    assert recipient_zones("+18005551212", "FL", "UTC") == (["America/New_York"], "state")  # toll-free
    assert recipient_zones(None, None, "America/Denver") == (["America/Denver"], "tenant")


def test_a_window_may_close_at_midnight_and_then_never_holds_a_message():
    all_day = SendWindow.parse("daily", "00:00", "24:00")
    last_minute = datetime(2026, 12, 3, 23, 59, 30, tzinfo=UTC)
    assert all_day.is_open(last_minute, "Etc/UTC") and all_day.next_opening(last_minute, ["Etc/UTC"]) == last_minute
    assert all_day.is_open(datetime(2026, 12, 4, 0, 0, tzinfo=UTC), "Etc/UTC")
    # the old way to say "all day" held a message sent in the day's last minute until midnight
    assert not SendWindow.parse("daily", "00:00", "23:59").is_open(last_minute, "Etc/UTC")
    evenings = SendWindow.parse("mon-fri", "18:00", "24:00")
    saturday = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)
    assert not evenings.is_open(saturday, "Etc/UTC")
    assert evenings.next_opening(saturday, ["Etc/UTC"]) == datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="is not a time like 08:00$"):
        SendWindow.parse("daily", "24:00", "24:00")  # a window cannot open at the end of the day


def test_a_midnight_close_and_next_opening_agree_to_the_last_microsecond():
    evenings = SendWindow.parse("mon-fri", "18:00", "24:00")
    last = datetime(2026, 12, 4, 23, 59, 59, 999999, tzinfo=UTC)  # a Friday
    assert evenings.is_open(last, "Etc/UTC") and evenings.next_opening(last, ["Etc/UTC"]) == last
