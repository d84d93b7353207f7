"""A person using the pages over real HTTP: a cookie jar, the forms' CSRF tokens."""

from __future__ import annotations

import re
from typing import Any

import httpx


class Person:
    """One browser: its own cookies; `form()` posts a page's form with its token."""

    def __init__(self, url: str, **headers: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=30, headers=headers)

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def token_on(self, path: str) -> str:
        """The CSRF token of the form on page `path`."""
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code, page.text[:300])
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def form(self, page: str, action: str, /, **fields: str) -> httpx.Response:
        """Post `fields` to `action` with the token of the form on `page`."""
        return self.client.post(action, data={"csrf_token": self.token_on(page), **fields})

    def sign_in(self, email: str, password: str, **extra: str) -> httpx.Response:
        return self.form("/sign-in", "/sign-in", email=email, password=password, **extra)

    @property
    def session_cookie(self) -> str | None:
        return self.client.cookies.get("gateway_session")

    def api(self, method: str, path: str, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        """Call /api/v1 with the session cookie (and, to change things, the page's token)."""
        headers = dict(kwargs.pop("headers", {}))
        if csrf and method not in ("GET", "HEAD"):
            home = self.get("/")
            found = re.search(r'<meta name="csrf-token" content="([^"]+)"', home.text)
            assert found, "no CSRF token on the home page"
            headers["X-CSRF-Token"] = found.group(1)
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)
