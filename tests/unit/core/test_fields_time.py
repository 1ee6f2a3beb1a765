"""core/fields time text: format_time is RFC 3339 in UTC for every datetime, and parse_time reads it back."""

import datetime

from hypothesis import given
from hypothesis import strategies as st

from boma_mesh_utils.sam.core.fields import format_time, parse_time

UTC = datetime.timezone.utc


@given(st.datetimes(min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
                                               datetime.timezone(-datetime.timedelta(hours=11))])))
def test_format_time_is_whole_utc_seconds_and_round_trips(value):
    text = format_time(value)
    assert len(text) == 20 and text.endswith("Z")
    assert text == value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    assert parse_time(text) == value.replace(microsecond=0)


def test_years_before_1000_keep_four_digits():
    # strftime's %Y gives "1" for year 1 on glibc, which parse_time (and RFC 3339) refuse.
    assert format_time(datetime.datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert parse_time("0001-01-01T00:00:00Z") == datetime.datetime(1, 1, 1, tzinfo=UTC)
