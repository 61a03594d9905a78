"""Shopify tool: where is my order? Status, items, shipments and tracking, from the Admin REST API.

An order's details go only to its customer: the user must give the email address of the order,
or the profile must be a staff one (`tool_options.any_order = true`). The email is a filter of
the lookup itself (`orders.json?name=…&email=…`), so an order with another email is never
fetched; the answer is still compared (trimmed, case-insensitively) before anything is shown. A wrong email and an unknown order get the same answer, so
nothing tells whether an order exists. Wrong guesses are limited per user and channel: each
one counts a hit on `ctx.tally` (a fixed window shared by all workers; an in-process count
when the context has none), and once `max_wrong_guesses` are reached the count is read
before anything else, so a refused lookup never reaches Shopify. Right answers don't count.
An order already shown to the same user in this conversation (remembered in
`ctx.notes["orders_shown"]`) is shown again without asking for the email.

Shopify failing (5xx, 401/403, 429 after two waits of at most 5 s honouring Retry-After,
timeout, no connection) raises `ToolError`; messages never hold the access token.
"""
from __future__ import annotations

import asyncio
import hmac
import re
from typing import Any, Awaitable, Callable

import httpx

from bot.memory import InMemoryMemory
from bot.tools import ToolContext, ToolError, tool
from knowledge.connectors.retry import retry_after

ORDER = re.compile(r"#?([A-Z0-9][A-Z0-9-]{0,31})")
FIELDS = ("name,email,contact_email,created_at,cancelled_at,financial_status,fulfillment_status,"
          "line_items,fulfillments,shipping_address")
RETRIES = 2  # waits after a 429 before giving up
MAX_WAIT = 5.0  # seconds, whatever Retry-After says


class ShopifyTools:
    """Order lookups in one Shopify store (a custom app's Admin API access token, read_orders)."""

    def __init__(self, *, store_url: str, token: str, api_version: str = "2025-01", timeout: float = 10.0,
                 max_wrong_guesses: int = 5, window: float = 3600,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        self.base = f"{store_url.rstrip('/')}/admin/api/{api_version}"
        self._headers = {"X-Shopify-Access-Token": token, "Accept": "application/json"}
        self.timeout, self.max_wrong_guesses, self.window, self.sleep = timeout, max_wrong_guesses, window, sleep
        self._local = InMemoryMemory()  # counts guesses when the context brings no shared tally

    @tool(timeout=45)
    async def order_status(self, ctx: ToolContext, order_number: str, email: str = "") -> dict[str, Any]:
        """Look up an order: its status, items, shipments and tracking links. Ask the customer for the
        email address they used for the order first: without the right one, nothing is shown.

        Args:
            order_number: the order number, e.g. #W2611340
            email: the email address the customer gave for the order, as they typed it
        """
        name = _order_name(order_number)
        if name is None:
            return {"error": f"{order_number.strip()[:40]!r} is not an order number: it looks like #W2611340"}
        staff = bool(ctx.options.get("any_order")) and ctx.private  # never in a public channel
        trusted = staff or (ctx.notes.get("orders_shown") or {}).get(name) == ctx.user.id
        if not trusted:
            if not email.strip():
                return {"order": name, "error": "email_required",
                        "note": "ask the customer for the email address used for this order"}
            if await self._guesses(ctx, 0) >= self.max_wrong_guesses:  # read only: Shopify isn't asked
                return {"order": name, "error": "too_many_attempts",
                        "note": "too many lookups with wrong details: the customer can try again later "
                                "or talk to a person"}
        order = await self._find(name, "" if trusted else email)
        if order is None or not (trusted or _owns(order, email)):  # _owns: in case a store ignored the filter
            if not trusted:
                await self._guesses(ctx, 1)
            return {"order": name, "found": False,
                    "note": "no order with this number" if staff else
                    "no order matches this number and email address: ask the customer to check both"}
        if not staff:
            ctx.notes.setdefault("orders_shown", {})[name] = ctx.user.id
        return _report(order)

    async def _guesses(self, ctx: ToolContext, hits: int) -> int:
        """Wrong guesses by this user in the window, after counting `hits` more."""
        tally = ctx.tally or self._local.tally
        return await tally(f"order-guess:{ctx.channel}:{ctx.user.id}", self.window, hits)

    async def _find(self, name: str, email: str) -> dict[str, Any] | None:
        """The order named `name`; with `email`, only if it is that customer's: Shopify filters,
        so another customer's order never leaves the store."""
        params = {"name": name, "status": "any", "fields": FIELDS, "limit": 5}
        if email:
            params["email"] = email.strip()
        data = await self._get("orders.json", params)
        orders = data.get("orders") if isinstance(data, dict) else None
        if not isinstance(orders, list):
            raise ToolError("Shopify orders.json: unexpected answer (no orders list)")
        return next((o for o in orders if isinstance(o, dict) and str(o.get("name", "")).upper() == name), None)

    async def _get(self, path: str, params: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(base_url=self.base, headers=self._headers, timeout=self.timeout) as client:
            for attempt in range(RETRIES + 1):
                try:
                    response = await client.get(path, params=params)
                except httpx.TimeoutException as exc:
                    raise ToolError(f"Shopify {path}: no answer within {self.timeout:g}s") from exc
                except httpx.HTTPError as exc:
                    raise ToolError(f"Shopify {path}: {type(exc).__name__} (can't reach the store)") from exc
                if response.status_code != 429 or attempt == RETRIES:
                    break
                wait = retry_after(response.headers.get("Retry-After"))
                await self.sleep(min(MAX_WAIT, 1.0 if wait is None else wait))
        if response.status_code != 200:
            raise ToolError(_http_message(path, response.status_code))
        try:
            return response.json()
        except ValueError as exc:
            raise ToolError(f"Shopify {path}: the answer is not JSON") from exc


def _http_message(path: str, status: int) -> str:
    if status in (401, 403):
        return f"Shopify {path}: the access token was refused (HTTP {status})"
    if status == 429:
        return f"Shopify {path}: still rate limited after {RETRIES} waits (HTTP 429)"
    return f"Shopify {path}: HTTP {status}"


def _order_name(text: str) -> str | None:
    """ "#W2611340" from "W2611340", "#w2611340" or " #W2611340 "; None if it can't be an order number."""
    match = ORDER.fullmatch(text.strip().upper())
    return f"#{match.group(1)}" if match else None


def _owns(order: dict[str, Any], email: str) -> bool:
    given = email.strip().casefold().encode()
    known = {str(order.get(k) or "").strip().casefold().encode() for k in ("email", "contact_email")} - {b""}
    return bool(given) and any(hmac.compare_digest(given, k) for k in known)


def _status(order: dict[str, Any]) -> str:
    """One word for the customer: cancelled, delivered, shipped, partially shipped, not shipped yet."""
    if order.get("cancelled_at"):
        return "cancelled"
    shipments = [f for f in order.get("fulfillments") or [] if f.get("status") != "cancelled"]
    if shipments and all(f.get("shipment_status") == "delivered" for f in shipments):
        return "delivered"
    return {"fulfilled": "shipped", "partial": "partially shipped"}.get(order.get("fulfillment_status") or "",
                                                                          "not shipped yet")


def _shipment(fulfillment: dict[str, Any]) -> dict[str, Any]:
    numbers = fulfillment.get("tracking_numbers") or [n for n in [fulfillment.get("tracking_number")] if n]
    urls = fulfillment.get("tracking_urls") or [u for u in [fulfillment.get("tracking_url")] if u]
    status = "cancelled" if fulfillment.get("status") == "cancelled" else fulfillment.get("shipment_status")
    return {"status": status or "shipped", "carrier": fulfillment.get("tracking_company") or "",
            "tracking_numbers": numbers, "tracking_urls": urls,
            "items": [line.get("title", "") for line in fulfillment.get("line_items") or []]}


def _report(order: dict[str, Any]) -> dict[str, Any]:
    """The compact view the model explains (no street address, no email)."""
    address = order.get("shipping_address") or {}
    return {
        "order": order.get("name"), "placed": order.get("created_at"), "status": _status(order),
        "payment": order.get("financial_status"), "fulfillment": order.get("fulfillment_status") or "unfulfilled",
        "cancelled_at": order.get("cancelled_at"),
        "items": [{"title": line.get("title", ""), "quantity": line.get("quantity", 1),
                   "options": line.get("variant_title") or "", "price": line.get("price")}
                  for line in order.get("line_items") or []],
        "shipments": [_shipment(f) for f in order.get("fulfillments") or []],
        "ship_to": ", ".join(str(address[k]) for k in ("city", "province_code", "country_code") if address.get(k)),
    }
