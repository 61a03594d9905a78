"""A fake Bot Framework on 127.0.0.1 for driving botbuilder over real HTTP: the channel's
OpenID metadata and signing keys, the AAD token endpoint, and the Bot Connector REST API.

One server (`FakeBotFramework.app()`) plays three parts, each on the real wire format:

- Identity (login.botframework.com): `GET /v1/.well-known/openidconfiguration` names the
  issuer and `jwks_uri`; `GET /v1/.well-known/keys` publishes the RSA test key as a JWK with
  its `endorsements` (the channels it may sign for). `token(...)` signs the JWT the Bot
  Framework puts on every request to a bot (`iss` https://api.botframework.com, `aud` the
  bot's app id, `serviceurl`, `nbf`/`exp`), and can forge (another key), expire, misaddress
  or mis-issue one.
- AAD (login.microsoftonline.com): `POST /{tenant}/oauth2/v2.0/token`, the OAuth2
  client-credentials grant a bot uses for its outgoing bearer token (form-encoded
  `grant_type`, `client_id`, `client_secret`, `scope`; JSON `access_token`/`expires_in`).
- Bot Connector (the activity's `serviceUrl`): `POST /v3/conversations` (a new thread in a
  channel, as TeamsInfo starts one), `POST /v3/conversations/{id}/activities` (send),
  `POST /v3/conversations/{id}/activities/{activityId}` (reply), `PUT …/{activityId}`
  (update), `DELETE …/{activityId}`. Each checks `Authorization: Bearer` against the tokens
  it issued (401 otherwise, unless `open_connector`). `throttle(times, retry_after)` makes the
  next calls answer 429 with `Retry-After`, as Teams does past its rate limits; `fail(status,
  times=n)` makes the next n answer an error (a 500 outage, a 403 roster refusal); `hold()`
  makes the next one hang until released, as a connector that stopped answering does.

Every connector request (answered, throttled or refused) is recorded as a `Call`; the
server runs in its own thread (see `server.serve`), so state is guarded by a lock and
`wait_for` blocks on a condition notified on every call: tests never sleep.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ISSUER = "https://api.botframework.com"  # the issuer of channel→bot tokens
SCOPE = "https://api.botframework.com/.default"  # what a bot asks AAD for
ENDORSEMENTS = ["msteams", "webchat", "emulator"]


@dataclass
class Call:
    """One Bot Connector request. `kind`: create, send, reply, update or delete; `at` is
    time.monotonic() when the fake received it; `status` what it answered."""

    kind: str
    conversation: str
    activity_id: str
    body: dict[str, Any]
    bearer: str = ""  # the token it carried
    status: int = 0
    response: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def activity(self) -> dict[str, Any]:
        """The activity sent (for `create`, the one inside the conversation parameters)."""
        return self.body.get("activity") or {} if self.kind == "create" else self.body


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeBotFramework:
    app_id: str = "00000000-0000-0000-0000-0000000000b0"
    password: str = "fake-app-password"
    tenant: str = "botframework.com"
    open_connector: bool = False  # accept connector calls without a bearer token (emulator mode)
    url: str = ""  # set once the server runs
    calls: list[Call] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)  # activity id -> last body
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _issued: set[str] = field(default_factory=set, repr=False)
    _throttled: list[tuple[str, str, float]] = field(default_factory=list, repr=False)  # kind, type, Retry-After
    _failures: list[tuple[str, str, int]] = field(default_factory=list, repr=False)  # kind, type, status
    _holds: list[tuple[str, str, threading.Event]] = field(default_factory=list, repr=False)  # kind, type, release

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)
        self.key, self.kid = _key(), f"fake-{secrets.token_hex(4)}"
        self._forger: rsa.RSAPrivateKey | None = None
        self._ids = itertools.count(int(time.time() * 1000))

    # -- identity -----------------------------------------------------------------------------
    @property
    def openid_url(self) -> str:
        return f"{self.url}/v1/.well-known/openidconfiguration"

    @property
    def login_url(self) -> str:
        return f"{self.url}/"

    def token(self, service_url: str, *, audience: str | None = None, issuer: str = ISSUER,
              expires_in: float = 3600, forged: bool = False, kid: str | None = None) -> str:
        """A channel→bot JWT as the Bot Framework signs it (`forged`: by another key)."""
        now = int(time.time())
        claims = {"serviceurl": service_url, "nbf": now - 300, "exp": now + int(expires_in), "iss": issuer,
                  "aud": self.app_id if audience is None else audience}
        if forged and self._forger is None:
            self._forger = _key()
        key = self._forger if forged else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid or self.kid, "x5t": kid or self.kid})

    def _jwk(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**jwk, "kid": self.kid, "x5t": self.kid, "use": "sig", "endorsements": ENDORSEMENTS}

    async def _openid(self, request: Request) -> Response:
        return JSONResponse({"issuer": ISSUER, "authorization_endpoint": "https://invalid.botframework.com",
                             "jwks_uri": f"{self.url}/v1/.well-known/keys",
                             "id_token_signing_alg_values_supported": ["RS256"],
                             "token_endpoint_auth_methods_supported": ["private_key_jwt"]})

    async def _keys(self, request: Request) -> Response:
        return JSONResponse({"keys": [self._jwk()]})

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        with self._changed:
            self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
            self._changed.notify_all()
        if request.path_params["tenant"] != self.tenant or form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "invalid_request", "error_description": "AADSTS900144"}, 400)
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.password:
            return JSONResponse({"error": "invalid_client",
                                 "error_description": "AADSTS7000215: Invalid client secret provided."}, 401)
        if form.get("scope") != SCOPE:
            return JSONResponse({"error": "invalid_scope", "error_description": "AADSTS70011"}, 400)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._issued.add(token)
        return JSONResponse({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                             "access_token": token})

    # -- the connector ------------------------------------------------------------------------
    def throttle(self, times: int = 1, retry_after: float | None = 1, kind: str = "", type: str = "") -> None:
        """The next `times` connector calls (of `kind` and activity `type`, or any) answer 429,
        with `Retry-After` unless it is None."""
        with self._lock:
            self._throttled += [(kind, type, -1 if retry_after is None else retry_after)] * times

    def fail(self, status: int, kind: str = "", times: int = 1, type: str = "", after: int = 0) -> None:
        """The next `times` calls (of `kind` and activity `type`, or any), once `after` more of
        them went through, fail with `status` (403: the bot was removed from the conversation,
        500: the service failed)."""
        with self._lock:
            self._failures += [(kind, type, 0)] * after + [(kind, type, status)] * times

    def hold(self, kind: str = "", type: str = "") -> threading.Event:
        """The next call (of `kind` and activity `type`, or any) hangs until the returned event is
        set, recorded as `held:{kind}`; then it answers 504 and keeps nothing (its caller gave up)."""
        release = threading.Event()
        with self._lock:
            self._holds.append((kind, type, release))
        return release

    @staticmethod
    def _take(queue: list[tuple[str, str, Any]], call: Call) -> Any:
        for n, (kind, type_, value) in enumerate(queue):
            if kind in ("", call.kind) and type_ in ("", call.activity.get("type")):
                del queue[n]
                return value
        return None

    async def _create(self, request: Request) -> Response:
        return await self._connector(request, "create", "", "")

    async def _send(self, request: Request) -> Response:
        return await self._connector(request, "send", request.path_params["conversation"], "")

    async def _activity(self, request: Request) -> Response:
        kind = {"POST": "reply", "PUT": "update", "DELETE": "delete"}[request.method]
        return await self._connector(request, kind, request.path_params["conversation"],
                                     request.path_params["activity"])

    async def _connector(self, request: Request, kind: str, conversation: str, activity_id: str) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw else {}
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        with self._changed:
            release = self._take(self._holds, Call(kind, conversation, activity_id, body))
            if release is not None:
                self.calls.append(Call(f"held:{kind}", conversation, activity_id, body, bearer, 504))
                self._changed.notify_all()
        if release is not None:
            await asyncio.to_thread(release.wait)
            return JSONResponse({"error": {"code": "GatewayTimeout", "message": "held"}}, 504)
        with self._changed:
            call = Call(kind, conversation, activity_id, body, bearer)
            self.calls.append(call)
            self._changed.notify_all()
            if not self.open_connector and bearer not in self._issued:
                call.status, call.response = 401, {"error": {"code": "Unauthorized", "message": "Unauthorized"}}
                return JSONResponse(call.response, 401)
            retry_after = self._take(self._throttled, call)
            if retry_after is not None:
                call.status = 429
                call.response = {"error": {"code": "TooManyRequests", "message": "Too many requests"}}
                headers = {} if retry_after < 0 else {"Retry-After": f"{retry_after:g}"}
                return JSONResponse(call.response, 429, headers=headers)
            failure = self._take(self._failures, call)
            if failure:  # 0: one let through before the failures
                call.status = failure
                call.response = {"error": {"code": "BotNotInConversationRoster",
                                           "message": "The bot is not part of the conversation roster."}}
                return JSONResponse(call.response, failure)
            call.status, call.response = self._answer(call)
        return JSONResponse(call.response, call.status)

    def _answer(self, call: Call) -> tuple[int, dict[str, Any]]:
        """The connector's answer to an accepted call (the lock is held)."""
        if call.kind == "delete":
            self.activities.pop(call.activity_id, None)
            return 200, {}
        if call.kind == "update":
            self.activities[call.activity_id] = call.body
            return 200, {"id": call.activity_id}
        new_id = str(next(self._ids))
        self.activities[new_id] = call.activity
        if call.kind == "create":
            channel = ((call.body.get("channelData") or {}).get("channel") or {}).get("id", "19:new@thread.tacv2")
            return 201, {"id": f"{channel};messageid={new_id}", "activityId": new_id}
        return 201, {"id": new_id}

    def app(self) -> Starlette:
        conversation = "/v3/conversations/{conversation:str}/activities"
        return Starlette(routes=[
            Route("/v1/.well-known/openidconfiguration", self._openid), Route("/v1/.well-known/keys", self._keys),
            Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
            Route("/v3/conversations", self._create, methods=["POST"]),
            Route(conversation, self._send, methods=["POST"]),
            Route(conversation + "/{activity:str}", self._activity, methods=["POST", "PUT", "DELETE"])])

    # -- assertions ---------------------------------------------------------------------------
    def calls_of(self, *kinds: str, ok: bool | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if (not kinds or c.kind in kinds) and (ok is None or c.ok == ok)]

    def wait_for(self, predicate: Callable[[list[Call]], Any], timeout: float = 15) -> Any:
        """Block until `predicate(calls)` is truthy; its value. TimeoutError otherwise."""
        with self._changed:
            found = self._changed.wait_for(lambda: predicate(list(self.calls)), timeout)
            if not found:
                raise TimeoutError(f"{len(self.calls)} connector calls, none matching: "
                                   f"{[(c.kind, c.status) for c in self.calls]}")
            return found
