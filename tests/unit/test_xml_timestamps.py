"""S3 XML timestamps: millisecond precision, truncated, never earlier than the second."""
from __future__ import annotations

import calendar
import time

from hypothesis import given, strategies as st

from gateway.xml import iso8601


def parse(text: str) -> float:
    whole, ms = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(ms) / 1000


def test_iso8601_examples():
    assert iso8601(0) == "1970-01-01T00:00:00.000Z"
    assert iso8601(1255369830.25) == "2009-10-12T17:50:30.250Z"


def test_iso8601_near_the_next_second_stays_in_its_second():
    # Rounding .9996 used to print .000 of the same second: almost a second early.
    assert iso8601(1255369830.9996) == "2009-10-12T17:50:30.999Z"


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_iso8601_is_within_one_millisecond_below(ts: float):
    shown = parse(iso8601(ts))
    assert ts - 0.0011 <= shown <= ts + 1e-6
