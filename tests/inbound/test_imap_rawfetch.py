"""The UID sets the header scan sends."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from inbound.imap.rawfetch import uid_ranges
from tests.conftest import _uid_set


@given(st.sets(st.integers(min_value=1, max_value=5000), min_size=1, max_size=600))
def test_uid_ranges_name_exactly_the_uids_given(uids: set[int]) -> None:
    text = uid_ranges(uids)
    assert sorted(_uid_set(text)) == sorted(uids)
    assert len(text) <= len(",".join(map(str, uids)))  # never longer than the plain list


def test_uid_ranges_compress_runs() -> None:
    assert uid_ranges([5, 1, 2, 3, 7, 8]) == "1:3,5,7:8"
    assert uid_ranges(range(1, 20001)) == "1:20000"
