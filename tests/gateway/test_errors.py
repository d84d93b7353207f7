"""The exception tree: every error the gateway raises on purpose is a GatewayError, the
tree drawn in gateway/errors.py names every one, and a refusal's class agrees with
its SMTP reply (a 4xx is raised as TryLater, a 5xx never is)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import gateway.errors
from gateway import smtp_replies as replies
from gateway.errors import (
    GatewayError,
    MailRejected,
    MessageRejected,
    RecipientRejected,
    Reply,
    SenderRejected,
    TryLater,
)

PACKAGES = ("gateway", "inbound", "outbound", "admin")


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if ".migrations" in info.name or info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == info.name
                    and not name.startswith("_")
                ):
                    found[name] = value
    return found


def test_every_domain_exception_is_a_gateway_error() -> None:
    outside = {
        name: kind.__module__
        for name, kind in _exception_classes().items()
        if not issubclass(kind, GatewayError) and name != "Problem"  # admin's HTTP answer
    }
    assert outside == {}


def test_the_tree_in_errors_py_names_every_one() -> None:
    drawn = gateway.errors.__doc__ or ""
    missing = [name for name in _exception_classes() if name != "Problem" and name not in drawn]
    assert missing == []


SMTP_REFUSALS = [
    value
    for value in vars(replies).values()
    if isinstance(value, Reply) and value.code >= 400 and value.code // 100 in (4, 5)
]


@pytest.mark.parametrize("reply", SMTP_REFUSALS, ids=str)
def test_a_refusal_is_raised_only_as_the_class_its_code_says(reply: Reply) -> None:
    permanent = (RecipientRejected, SenderRejected, MessageRejected)
    right: tuple[type[MailRejected], ...] = (TryLater,) if reply.code < 500 else permanent
    wrong: tuple[type[MailRejected], ...] = permanent if reply.code < 500 else (TryLater,)
    for kind in right:
        assert kind(reply).reply == reply
    for kind in wrong:
        with pytest.raises(TypeError):
            kind(reply)
