"""/api/v1/webhooks: the account's endpoints and their delivery log (scope admin), and
/api/v1/events: the catch-up feed of the same events (scope read).

    GET    /webhooks                      the endpoints (never their secrets)
    POST   /webhooks                      {url, event_types}: 201, with the secret, once
    GET    /webhooks/{id}
    PATCH  /webhooks/{id}                 {url?, event_types?, enabled?}
    DELETE /webhooks/{id}                 204, its deliveries with it
    POST   /webhooks/{id}/rotate-secret   the new secret, once (the old signs for 24 h)
    POST   /webhooks/{id}/test            202: a webhook.test event to it
    GET    /webhooks/{id}/deliveries      its delivery log, newest first, paged
    POST   /webhooks/deliveries/{id}/retry  202: tried again now
    GET    /events?after=ID&limit=        events after ID, oldest first, as delivered
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.auth import Principal, scoped
from admin.pagination import check_limit, page
from admin.params import AfterId, ItemId
from admin.sessions import in_session
from gateway.errors import Forbidden
from gateway.models import Event, WebhookDelivery, WebhookEndpoint
from gateway.vault import Vault
from gateway.webhooks import (
    EVENT_TYPES,
    PUBLIC_TYPES,
    add_endpoint,
    check_url,
    checked_types,
    enable,
    get_endpoint,
    remove_endpoint,
    retry_delivery,
    rotate_secret,
    send_test,
)

T = TypeVar("T")
router = APIRouter(prefix="/api/v1", tags=["webhooks"])
ADMIN, READ = Depends(scoped("admin")), Depends(scoped("read"))


class EndpointIn(BaseModel):
    model_config = {"extra": "forbid"}
    url: str = Field(max_length=2000)
    event_types: list[str] = Field(default=[], description=f"of {', '.join(EVENT_TYPES)}")


class EndpointChange(BaseModel):
    model_config = {"extra": "forbid"}
    url: str | None = Field(default=None, max_length=2000)
    event_types: list[str] | None = None
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: int
    url: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: str


class EndpointMade(EndpointOut):
    secret: str = Field(description="whsec_...: shown this once")


class Secret(BaseModel):
    secret: str


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    type: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: str
    delivered_at: str | None


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


class EndpointPage(BaseModel):
    data: list[EndpointOut]
    next_cursor: str | None


class EventOut(BaseModel):
    id: int
    type: str
    timestamp: str
    data: dict[str, Any]


class EventFeed(BaseModel):
    data: list[EventOut]
    next_after: int = Field(description="ask ?after= this next time")


@router.get("/webhooks", response_model=EndpointPage, summary="The webhook endpoints")
async def list_all(
    request: Request, limit: int = 50, cursor: str | None = None, who: Principal = ADMIN
) -> dict[str, Any]:
    check_limit(limit)
    query = {"account": who.account_id, "list": "webhooks"}
    after = request.app.state.cursors().after(cursor, query)

    def work(session: Session) -> list[dict[str, Any]]:
        found = session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.account_id == who.account_id, WebhookEndpoint.id > after)
            .order_by(WebhookEndpoint.id)
            .limit(limit + 1)
        )
        return [_endpoint(e) for e in found]

    return page(await in_session(request, work), limit, request.app.state.cursors(), query)


@router.post("/webhooks", status_code=201, response_model=EndpointMade, summary="Add one")
async def create(body: EndpointIn, request: Request, who: Principal = ADMIN) -> dict[str, Any]:
    vault = _vault(request)

    def work(session: Session) -> dict[str, Any]:
        made, secret = add_endpoint(
            session, request.app.state.config, vault, who.account_id, body.url, body.event_types
        )
        return {**_endpoint(made), "secret": secret}

    return await in_session(request, work)


@router.get("/webhooks/{endpoint_id}", response_model=EndpointOut, summary="One endpoint")
async def one(endpoint_id: ItemId, request: Request, who: Principal = ADMIN) -> dict[str, Any]:
    return await in_session(
        request, lambda s: _endpoint(get_endpoint(s, who.account_id, endpoint_id))
    )


@router.patch("/webhooks/{endpoint_id}", response_model=EndpointOut, summary="Change one")
async def change(
    endpoint_id: ItemId, body: EndpointChange, request: Request, who: Principal = ADMIN
) -> dict[str, Any]:
    def work(session: Session) -> dict[str, Any]:
        endpoint = get_endpoint(session, who.account_id, endpoint_id)
        if body.url is not None:
            check_url(request.app.state.config, body.url)
            endpoint.url = body.url
        if body.event_types is not None:
            endpoint.event_types = checked_types(body.event_types)
        if body.enabled is True:
            enable(endpoint)
        elif body.enabled is False:
            endpoint.enabled, endpoint.disabled_reason = False, "disabled by the API"
        session.flush()
        return _endpoint(endpoint)

    return await in_session(request, work)


@router.delete("/webhooks/{endpoint_id}", status_code=204, summary="Remove one")
async def delete(endpoint_id: ItemId, request: Request, who: Principal = ADMIN) -> Response:
    await in_session(
        request, lambda s: remove_endpoint(s, get_endpoint(s, who.account_id, endpoint_id))
    )
    return Response(status_code=204)


@router.post("/webhooks/{endpoint_id}/rotate-secret", response_model=Secret, summary="Rotate")
async def rotate(endpoint_id: ItemId, request: Request, who: Principal = ADMIN) -> dict[str, str]:
    vault = _vault(request)
    secret = await in_session(
        request, lambda s: rotate_secret(s, vault, get_endpoint(s, who.account_id, endpoint_id))
    )
    return {"secret": secret}


@router.post("/webhooks/{endpoint_id}/test", status_code=202, summary="Send a test event")
async def test(endpoint_id: ItemId, request: Request, who: Principal = ADMIN) -> Response:
    await in_session(request, lambda s: send_test(s, get_endpoint(s, who.account_id, endpoint_id)))
    return Response(status_code=202)


@router.get(
    "/webhooks/{endpoint_id}/deliveries", response_model=DeliveryPage, summary="Delivery log"
)
async def deliveries(
    endpoint_id: ItemId,
    request: Request,
    limit: int = 50,
    cursor: str | None = None,
    who: Principal = ADMIN,
) -> dict[str, Any]:
    check_limit(limit)
    query = {"account": who.account_id, "endpoint": endpoint_id}
    before = request.app.state.cursors().after(cursor, query)

    def work(session: Session) -> list[dict[str, Any]]:
        endpoint = get_endpoint(session, who.account_id, endpoint_id)
        found = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
        if before:
            found = found.where(WebhookDelivery.id < before)
        rows = session.scalars(found.order_by(WebhookDelivery.id.desc()).limit(limit + 1))
        return [_delivery(d) for d in rows]

    rows = await in_session(request, work)
    return page(rows, limit, request.app.state.cursors(), query)


@router.post("/webhooks/deliveries/{delivery_id}/retry", status_code=202, summary="Retry one")
async def retry(delivery_id: ItemId, request: Request, who: Principal = ADMIN) -> Response:
    await in_session(request, lambda s: retry_delivery(s, who.account_id, delivery_id))
    return Response(status_code=202)


@router.get("/events", response_model=EventFeed, summary="Events after an id: the catch-up feed")
async def events(
    request: Request, after: AfterId = 0, limit: int = 100, who: Principal = READ
) -> dict[str, Any]:
    check_limit(limit)
    if not who.whole_account:
        raise Forbidden("the event feed is the whole account's: an admin's or the account's")
    kinds = [k for k in PUBLIC_TYPES if k != "webhook.test"]

    def work(session: Session) -> dict[str, Any]:
        rows = session.execute(
            select(Event.id, Event.kind, Event.created_at, Event.payload)
            .where(Event.account_id == who.account_id, Event.id > after, Event.kind.in_(kinds))
            .order_by(Event.id)
            .limit(limit)
        ).all()
        data = [
            {
                "id": r.id,
                "type": PUBLIC_TYPES[r.kind],
                "timestamp": r.created_at.isoformat(),
                "data": r.payload,
            }
            for r in rows
        ]
        return {"data": data, "next_after": data[-1]["id"] if data else after}

    return await in_session(request, work)


def _vault(request: Request) -> Vault:
    return Vault.load(request.app.state.config.secret_key_file)


def _endpoint(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at.isoformat(),
    }


def _delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "type": delivery.event_type,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at.isoformat(),
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
    }
