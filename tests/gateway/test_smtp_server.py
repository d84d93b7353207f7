"""GatewaySMTP's shortcuts answer exactly as stock aiosmtpd does."""

from __future__ import annotations

import asyncio
import inspect
import string
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.smtp_server import GatewaySMTP


class _Handler:
    async def handle_DATA(self, *args: Any) -> str:
        return "250 OK"


@pytest.fixture
def servers() -> Iterator[tuple[GatewaySMTP, SMTP]]:
    loop = asyncio.new_event_loop()
    try:
        ours = GatewaySMTP(_Handler(), max_errors=20, loop=loop)
        stock = SMTP(_Handler(), loop=loop)
        yield ours, stock
    finally:
        loop.close()


def test_every_command_and_auth_method_is_still_found(servers: tuple[GatewaySMTP, SMTP]) -> None:
    ours, _ = servers
    everything = object.__dir__(ours)  # what dir() would list without the shortcut
    assert set(ours._smtp_methods) == {
        name.removeprefix("smtp_") for name in everything if name.startswith("smtp_")
    }
    auth = {name for name, _ in inspect.getmembers(type(ours)) if name.startswith("auth_")}
    assert auth and {f"auth_{m}" for m in ours._auth_methods} == auth
    assert ours._smtp_methods["EHLO"] == ours.smtp_EHLO  # bound to this instance


_PATH_CHARS = string.ascii_letters[:6] + string.digits[:3] + "@.<>-_+= \t()\"\\[]:,;!%'é"


@given(
    st.one_of(
        st.text(alphabet=_PATH_CHARS, max_size=40),
        st.builds(
            lambda local, domain, rest: f"<{local}@{domain}>{rest}",
            st.text(alphabet=_PATH_CHARS, max_size=12),
            st.text(alphabet=_PATH_CHARS, max_size=12),
            st.text(alphabet=_PATH_CHARS, max_size=12),
        ),
        st.builds(  # near the plain shape, where the shortcut answers
            lambda local, domain, rest: f"<{local}@{domain}>{rest}",
            st.text(alphabet="ab1._+=-", min_size=1, max_size=10),
            st.text(alphabet="cd2.-", min_size=1, max_size=10),
            st.text(alphabet=" \t(SIZE=1)", max_size=8),
        ),
    )
)
@example("<bob@acme.com>")
@example("<bob@acme.com> SIZE=100 BODY=8BITMIME")
@example("<bob@acme.com>  \t(comment) SIZE=1")
@example("<bob.@acme.com>")
@example("<b..ob@acme.com>")
@example("<bob@acme..com>")
@example("<bob@acme.com.>")
@example("<" + "x" * 65 + "@acme.com>")
@example("<@relay.example:bob@acme.com>")
@example('<"bob@x"@acme.com>')
@example("<")
@example("0@[")
def test_paths_parse_as_aiosmtpd_parses_them(text: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        ours = GatewaySMTP(_Handler(), max_errors=20, loop=loop)
        stock = SMTP(_Handler(), loop=loop)
        try:
            expected = stock._getaddr(text)
        except Exception:  # stock aiosmtpd on "<" or "a@[": ours answers 501, not 500
            expected = (None, None)
        assert ours._getaddr(text) == expected
    finally:
        loop.close()
