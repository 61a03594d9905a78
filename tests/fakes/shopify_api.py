"""A fake Shopify Admin REST API (the orders endpoint) whose store is the tau2-bench retail shop.

``FakeShopify.from_tau2()`` turns the orders of ``tests/fixtures/tau2_retail/db.json`` into the
Admin API's order JSON: ``name`` "#W2611340" (order_number 2611340 with the name prefix "#W"), the
customer's ``email``, ``line_items`` (one per item, repeated items as a quantity; the options as
``variant_title``), ``fulfillments`` with ``tracking_number(s)``, a carrier and its tracking URL,
and the ``shipping_address``. tau2 statuses become Shopify's: pending = paid and unfulfilled;
processed = fulfilled, in transit; delivered = fulfilled, delivered and closed; cancelled =
``cancelled_at`` set, refunded, its fulfillment cancelled.

``GET /admin/api/{version}/orders.json`` honours ``name``, ``email`` (the order's email or
contact email, case-insensitively), ``status`` (``open`` unless asked, like Shopify: delivered
and cancelled orders are closed), ``fields`` and ``limit``. Each call records the orders its
answer carried (``Call.orders``). A wrong or
missing ``X-Shopify-Access-Token`` answers 401 with Shopify's body. Tests script ``rate_limit``
(429 with Retry-After) and ``fail`` (5xx); every call is recorded in ``calls``.
"""
from __future__ import annotations

import json
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "tau2_retail" / "db.json"
SHOP_TIMEZONE = timezone(timedelta(hours=-5))
CARRIERS = (("UPS", "https://www.ups.com/track?tracknum={}"),
            ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={}"),
            ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={}"),
            ("DHL Express", "https://www.dhl.com/us-en/home/tracking/tracking-express.html?tracking-id={}"))


@dataclass
class Call:
    path: str
    params: dict[str, str]
    status: int = 0
    orders: list[dict[str, Any]] = field(default_factory=list)  # the orders the response carried


# --- tau2 → Shopify ------------------------------------------------------------------------------

def _time(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def _line_items(order: dict[str, Any], number: int) -> list[dict[str, Any]]:
    fulfilled = order["status"] in ("processed", "delivered")
    lines: dict[str, dict[str, Any]] = {}
    for item in order["items"]:
        line = lines.get(item["item_id"])
        if line:
            line["quantity"] += 1
            continue
        variant = " / ".join(str(v) for v in item["options"].values())
        lines[item["item_id"]] = {
            "id": number * 100 + len(lines) + 1, "variant_id": int(item["item_id"]),
            "product_id": int(item["product_id"]), "title": item["name"], "variant_title": variant,
            "name": f"{item['name']} - {variant}", "sku": item["item_id"], "vendor": "tau2 retail",
            "quantity": 1, "price": f"{item['price']:.2f}", "requires_shipping": True,
            "fulfillment_status": "fulfilled" if fulfilled else None}
    for line in lines.values():
        line["fulfillable_quantity"] = 0 if fulfilled else line["quantity"]
    return list(lines.values())


def _fulfillment(order: dict[str, Any], index: int, shipped: dict[str, Any], lines: list[dict[str, Any]],
                 order_id: int, created: datetime) -> dict[str, Any]:
    numbers = list(shipped["tracking_id"])
    company, url = CARRIERS[int(numbers[0]) % len(CARRIERS)] if numbers else ("", "")
    urls = [url.format(n) for n in numbers]
    return {"id": order_id * 10 + index + 1, "order_id": order_id, "name": f"{order['order_id']}.{index + 1}",
            "status": "cancelled" if order["status"] == "cancelled" else "success",
            "shipment_status": {"processed": "in_transit", "delivered": "delivered"}.get(order["status"]),
            "created_at": _time(created + timedelta(days=1)), "updated_at": _time(created + timedelta(days=2)),
            "service": "manual", "tracking_company": company, "tracking_number": numbers[0] if numbers else None,
            "tracking_numbers": numbers, "tracking_url": urls[0] if urls else None, "tracking_urls": urls,
            "line_items": [line for line in lines if line["sku"] in shipped["item_ids"]]}


def _financial_status(order: dict[str, Any]) -> str:
    paid = sum(p["amount"] for p in order["payment_history"] if p["transaction_type"] == "payment")
    refunded = sum(p["amount"] for p in order["payment_history"] if p["transaction_type"] == "refund")
    return "paid" if not refunded else "refunded" if refunded >= paid else "partially_refunded"


def _address(address: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    first, last = user["name"]["first_name"], user["name"]["last_name"]
    return {"first_name": first, "last_name": last, "name": f"{first} {last}", "address1": address["address1"],
            "address2": address.get("address2") or None, "city": address["city"], "province_code": address["state"],
            "zip": address["zip"], "country": "United States" if address["country"] == "USA" else address["country"],
            "country_code": "US" if address["country"] == "USA" else address["country"], "phone": None}


def shopify_order(order: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The Admin REST API's JSON for one tau2 order (see the module docstring)."""
    number = int(order["order_id"].lstrip("#W"))
    order_id = 5_000_000_000_000 + number
    created = datetime(2024, 1, 1, 9, tzinfo=SHOP_TIMEZONE) + timedelta(minutes=number % (300 * 24 * 60))
    lines = _line_items(order, number)
    status, total = order["status"], sum(i["price"] for i in order["items"])
    return {
        "id": order_id, "name": order["order_id"], "order_number": number, "email": user["email"],
        "contact_email": user["email"], "created_at": _time(created), "processed_at": _time(created),
        "updated_at": _time(created + timedelta(days=2)), "currency": "USD", "total_price": f"{total:.2f}",
        "subtotal_price": f"{total:.2f}", "total_tax": "0.00", "financial_status": _financial_status(order),
        "fulfillment_status": "fulfilled" if status in ("processed", "delivered") else None,
        "cancelled_at": _time(created + timedelta(days=2)) if status == "cancelled" else None,
        "cancel_reason": "customer" if status == "cancelled" else None,
        "closed_at": _time(created + timedelta(days=5)) if status in ("delivered", "cancelled") else None,
        "tags": status if status not in ("pending", "processed", "delivered", "cancelled") else "",
        "customer": {"id": 7_000_000_000 + zlib.crc32(user["user_id"].encode()),
                     "email": user["email"], "first_name": user["name"]["first_name"],
                     "last_name": user["name"]["last_name"]},
        "line_items": lines,
        "fulfillments": [_fulfillment(order, i, f, lines, order_id, created) for i, f in enumerate(order["fulfillments"])],
        "shipping_address": _address(order["address"], user),
    }


# --- the fake server ------------------------------------------------------------------------------

@dataclass
class FakeShopify:
    orders: dict[str, dict[str, Any]]  # by name ("#W2611340")
    token: str = "shpat_test_0123456789"
    calls: list[Call] = field(default_factory=list)
    _script: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)  # the next answers
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_tau2(cls, path: Path | str = FIXTURE, **kwargs: Any) -> "FakeShopify":
        """A store holding the orders of a tau2 retail ``db.json``."""
        db = json.loads(Path(path).read_text(encoding="utf-8"))
        orders = {o["order_id"]: shopify_order(o, db["users"][o["user_id"]]) for o in db["orders"].values()}
        return cls(orders, **kwargs)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/admin/api/{version}/orders.json", self.list_orders)])

    # ---- test controls -----------------------------------------------------------------------------
    def rate_limit(self, times: int = 1, retry_after: str = "2.0") -> None:
        """The next `times` calls answer 429 with this Retry-After (Shopify sends seconds as a float)."""
        body = {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                          "uninterrupted service."}
        with self._lock:
            self._script += [(429, {"Retry-After": retry_after}, body)] * times

    def fail(self, times: int = 1, status: int = 500) -> None:
        """The next `times` calls answer `status` (a 5xx)."""
        with self._lock:
            self._script += [(status, {}, {"errors": "Internal Server Error"})] * times

    def reset(self) -> None:
        """Forget the calls and the scripted answers (the store stays as it is)."""
        with self._lock:
            self.calls.clear()
            self._script.clear()

    def email_of(self, name: str) -> str:
        return self.orders[name]["email"]

    # ---- HTTP ----------------------------------------------------------------------------------------
    async def list_orders(self, request: Request) -> JSONResponse:
        params = dict(request.query_params)
        call = Call(request.url.path, params)
        with self._lock:
            self.calls.append(call)
            scripted = self._script.pop(0) if self._script else None
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            response = JSONResponse({"errors": "[API] Invalid API key or access token (unrecognized login or "
                                               "wrong password)"}, status_code=401)
        elif scripted:
            status, headers, body = scripted
            response = JSONResponse(body, status_code=status, headers=headers)
        else:
            call.orders = self._select(params)
            response = JSONResponse({"orders": call.orders})
        call.status = response.status_code
        return response

    def _select(self, params: dict[str, str]) -> list[dict[str, Any]]:
        status = params.get("status", "open")
        wanted = {"any": lambda o: True, "open": lambda o: not o["closed_at"] and not o["cancelled_at"],
                  "closed": lambda o: bool(o["closed_at"]), "cancelled": lambda o: bool(o["cancelled_at"])}[status]
        email = params.get("email", "").strip().casefold()  # Shopify compares emails case-insensitively
        orders = [o for o in self.orders.values() if wanted(o) and params.get("name", o["name"]) == o["name"]
                  and (not email or email in {str(o.get(k) or "").casefold() for k in ("email", "contact_email")})]
        orders = orders[:min(int(params.get("limit", 50)), 250)]
        fields = [f for f in params.get("fields", "").split(",") if f]
        return [{k: v for k, v in o.items() if k in fields} if fields else o for o in orders]
