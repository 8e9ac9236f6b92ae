"""shared/model/times.py: `utc_timestamp`'s fast path for the common CreationTime form reads every
time as the general path does (tests/parse/reference_normalize.py keeps that path as it was)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.model.times import utc_timestamp
from tests.parse.reference_normalize import utc_timestamp as reference_utc_timestamp

pytestmark = pytest.mark.unit

DIGITS = "0123456789"
# Characters a time might hold where a digit belongs: other scripts' digits (\\d takes them),
# signs, spaces and underscores (int() takes those), and letters.
NEAR_DIGITS = DIGITS + "\u0660\u0669\u0966\uff10\u00b2+-_ Tx"


def _field(width: int, alphabet: str) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=width, max_size=width)


@st.composite
def time_like(draw: st.DrawFn) -> str:
    """Text shaped like `YYYY-MM-DDTHH:MM:SS`, each part any digits (out of range too) or a near
    miss, with now and then a fraction, a zone, surrounding whitespace or another separator."""
    alphabet = draw(st.sampled_from([DIGITS, DIGITS, NEAR_DIGITS]))
    year, month, day = draw(_field(4, alphabet)), draw(_field(2, alphabet)), draw(_field(2, alphabet))
    hour, minute, second = draw(_field(2, alphabet)), draw(_field(2, alphabet)), draw(_field(2, alphabet))
    separator = draw(st.sampled_from(["T", "T", " ", "t", "_"]))
    text = f"{year}-{month}-{day}{separator}{hour}:{minute}:{second}"
    text += draw(st.sampled_from(["", "", "", ".1234567", ",5", "Z", "+01:00", "-0530", "+24:00", "\n"]))
    return draw(st.sampled_from(["{}", "{}", " {}\t", "\u00a0{}"])).format(text)


@settings(max_examples=1500, deadline=None)
@given(
    time_like()
    | st.datetimes().map(datetime.isoformat)
    | st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S"))
    | st.text(max_size=30)
)
def test_utc_timestamp_reads_every_text_as_the_general_path_does(text: str) -> None:
    ours, reference = utc_timestamp(text), reference_utc_timestamp(text)
    assert ours == reference
    assert repr(ours) == repr(reference)  # the same tzinfo object too, not just the same instant


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-18T09:15:42", datetime(2026, 11, 18, 9, 15, 42, tzinfo=UTC)),
        ("2026-11-18 09:15:42", datetime(2026, 11, 18, 9, 15, 42, tzinfo=UTC)),
        ("2024-02-29T23:59:59", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_the_common_form_is_read_as_utc(text: str, expected: datetime) -> None:
    moment = utc_timestamp(text)
    assert moment == expected
    assert moment is not None
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-18T24:00:00",
        "2026-11-18T23:60:00",
        "2026-11-18T23:59:60",
        "2026-02-29T00:00:00",
        "0000-01-01T00:00:00",
    ],
)
def test_a_time_of_the_common_form_that_does_not_exist_is_none(text: str) -> None:
    # Hour 24 especially: newer Pythons' fromisoformat read it as the next day's midnight.
    assert utc_timestamp(text) is None
