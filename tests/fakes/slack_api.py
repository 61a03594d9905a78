"""A fake Slack Web API server (POST /api/<method>) for driving the real slack_sdk / slack-bolt clients.

Point an `AsyncWebClient(base_url=url + "/api/")` (or a bolt `AsyncApp`'s client) at it. Requests are
accepted form-encoded or as JSON (slack_sdk sends chat.* as JSON, most other methods as form data),
authenticated with `Authorization: Bearer <token>` (a `token` argument in the body is accepted too, as
Slack does). Answers use Slack's real response shapes and error codes; protocol errors are HTTP 200
with `{"ok": false, "error": ...}` except rate limiting, which is HTTP 429 with a `Retry-After` header.

Supported: auth.test, chat.postMessage, chat.update, chat.postEphemeral, chat.delete, reactions.add,
reactions.remove, conversations.replies, conversations.info, users.info, chat.getPermalink. Anything
else answers `unknown_method`.

Also served: `POST /response/<id>`, the `response_url` Slack puts in slash commands and block
actions (recorded as method "response_url"; build one with `response_url(id)`), and Socket Mode:
`apps.connections.open` (app-level token) answers the URL of a WebSocket at `/link`, which greets
with `hello`; `send_envelope` pushes an envelope to the connected client, and the client's acks
are recorded as method "socket_ack".

The fake keeps a message store (messages posted through it plus ones seeded with `seed_message`) so
conversations.replies / chat.update / chat.delete / reactions behave consistently. Every request is
recorded as a `Call` in `calls` (including rate-limited and failed ones). The server runs in its own
thread (see `server.serve`), so all state is guarded by a lock; `wait_for` blocks on a condition
variable notified on every call, so tests never poll with sleeps.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

_TS_START = 1700000000_000100  # microseconds; first generated ts is "1700000000.000100"
_TS_STEP = 100


def _ts_to_int(ts: str) -> int:
    sec, _, frac = str(ts).partition(".")
    return int(sec) * 1_000_000 + int((frac + "000000")[:6])


def _int_to_ts(value: int) -> str:
    return f"{value // 1_000_000}.{value % 1_000_000:06d}"


@dataclass
class Call:
    """One recorded Web API request. `at` is time.monotonic() when the fake received it."""

    method: str
    args: dict[str, Any]
    token: str | None
    limited: bool = False
    response: dict[str, Any] | None = None
    status: int = 200
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))


@dataclass
class FakeSlack:
    token: str = "xoxb-test"
    bot_user_id: str = "U0BOT"
    bot_id: str = "B0BOT"
    app_id: str = "A0APP"
    team_id: str = "T0TEAM"
    team: str = "Switchboard Test"
    team_domain: str = "switchboard-test"
    # strict=True: unknown users / channels / messages get Slack's not_found errors instead of
    # synthesized defaults (users.info, conversations.info, reactions.*).
    strict: bool = False
    app_token: str = "xapp-test"
    url: str = ""  # set by the test once the server runs (for response_url and Socket Mode URLs)
    calls: list[Call] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    # channel -> ts -> message dict (Slack message shape)
    messages: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    # (channel, ts) -> {reaction name -> [user ids]}
    reactions: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _cond: threading.Condition = field(init=False, repr=False, compare=False)
    _next_ts: int = field(default=_TS_START, repr=False)
    _rate_limits: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque), repr=False)
    _failures: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque), repr=False)
    # method -> (status, channel or None for any) of the next calls to fail
    _outages: dict[str, deque[tuple[int, str | None]]] = field(default_factory=lambda: defaultdict(deque),
                                                               repr=False)
    _holds: dict[str, threading.Event] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)
        self._sockets: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []

    # ----------------------------------------------------------------- test-side API

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/{method}", self.handle, methods=["GET", "POST"]),
                                 Route("/response/{rid}", self.respond, methods=["POST"]),
                                 WebSocketRoute("/link", self.link)])

    def response_url(self, rid: str) -> str:
        return f"{self.url}/response/{rid}"

    def send_envelope(self, envelope: dict[str, Any], timeout: float = 10) -> None:
        """Push a Socket Mode envelope to the client connected at /link (waits for a connection)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._sockets, timeout=timeout):
                raise TimeoutError("no Socket Mode client connected")
            loop, queue = self._sockets[-1]
        asyncio.run_coroutine_threadsafe(queue.put(envelope), loop).result(timeout)

    async def respond(self, request: Request) -> Response:
        body = await request.body()
        args = json.loads(body) if body.startswith(b"{") else dict(parse_qsl(body.decode()))
        with self._cond:
            call = Call("response_url", {**args, "rid": request.path_params["rid"]}, None,
                        response={"ok": True})
            self._record(call)
        return JSONResponse({"ok": True})

    async def link(self, websocket: WebSocket) -> None:
        await websocket.accept()
        queue: asyncio.Queue = asyncio.Queue()
        await websocket.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"},
                                   "connection_info": {"app_id": self.app_id}})
        with self._cond:
            self._sockets.append((asyncio.get_running_loop(), queue))
            self._cond.notify_all()
        sender = asyncio.create_task(self._send_envelopes(websocket, queue))
        try:
            while True:
                ack = json.loads(await websocket.receive_text())
                with self._cond:
                    self._record(Call("socket_ack", ack, None, response={"ok": True}))
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            with self._cond:
                self._sockets = [s for s in self._sockets if s[1] is not queue]

    @staticmethod
    async def _send_envelopes(websocket: WebSocket, queue: asyncio.Queue) -> None:
        while True:
            await websocket.send_json(await queue.get())

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10) -> list[Call]:
        """Block until at least `count` calls (any outcome, rate-limited included) to `method`
        were recorded; returns them. Raises TimeoutError otherwise."""
        def enough() -> bool:
            return sum(1 for c in self.calls if c.method == method) >= count
        with self._cond:
            if not self._cond.wait_for(enough, timeout=timeout):
                seen = [c.method for c in self.calls]
                raise TimeoutError(f"waited {timeout}s for {count} call(s) to {method}; calls so far: {seen}")
            return [c for c in self.calls if c.method == method]

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls to `method` answer HTTP 429, `Retry-After: retry_after`."""
        with self._lock:
            self._rate_limits[method].extend([retry_after] * times)

    def fail(self, method: str, error: str) -> None:
        """The next call to `method` answers {"ok": false, "error": error} (queued: call again for more)."""
        with self._lock:
            self._failures[method].append(error)

    def outage(self, method: str, times: int, status: int = 500, channel: str | None = None) -> None:
        """The next `times` calls to `method` (those for `channel`, if given) answer HTTP `status`
        with an HTML error page, as Slack's edge does in an incident."""
        with self._lock:
            self._outages[method].extend([(status, channel)] * times)

    def hold(self, method: str) -> threading.Event:
        """The next call to `method` hangs (recorded as `held:{method}`) until the returned event is set."""
        release = threading.Event()
        with self._lock:
            self._holds[method] = release
        return release

    def add_user(self, user_id: str, name: str | None = None, real_name: str | None = None,
                 display_name: str | None = None, tz: str = "Europe/Berlin", is_bot: bool = False,
                 **extra: Any) -> dict[str, Any]:
        name = name or user_id.lower()
        real_name = real_name or name
        user = self._user_object(user_id, name, real_name, display_name if display_name is not None else name,
                                 tz, is_bot)
        user.update(extra)
        with self._lock:
            self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str | None = None, is_private: bool = False,
                    is_im: bool = False, is_ext_shared: bool = False, **extra: Any) -> dict[str, Any]:
        channel = self._channel_object(channel_id, name, is_private, is_im, is_ext_shared)
        channel.update(extra)
        with self._lock:
            self.channels[channel_id] = channel
        return channel

    def seed_message(self, channel: str, ts: str, text: str, user: str,
                     thread_ts: str | None = None, **extra: Any) -> dict[str, Any]:
        """Store a message as if a user had posted it (visible to conversations.replies etc.)."""
        message: dict[str, Any] = {"user": user, "type": "message", "ts": ts, "text": text, "team": self.team_id}
        if thread_ts and thread_ts != ts:
            message["thread_ts"] = thread_ts
        message.update(extra)
        with self._lock:
            self.messages[channel][ts] = message
            self._next_ts = max(self._next_ts, _ts_to_int(ts) + _TS_STEP)
        return message

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The stored messages of a thread (root first), as conversations.replies would return them."""
        with self._lock:
            return self._thread(channel, thread_ts)

    # ----------------------------------------------------------------- HTTP side

    async def handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        args: dict[str, Any] = dict(request.query_params)
        content_type = request.headers.get("content-type", "")
        if "application/json" in content_type:
            raw = await request.body()
            if raw:
                body = json.loads(raw)
                if isinstance(body, dict):
                    args.update(body)
        elif request.method == "POST":  # application/x-www-form-urlencoded (parsed here: no python-multipart)
            args.update(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        token = None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        elif "token" in args:
            token = args["token"]
        args.pop("token", None)

        with self._lock:
            release = self._holds.pop(method, None)
        if release is not None and not release.is_set():
            with self._cond:
                self._record(Call(f"held:{method}", args, token, response={}))
            await asyncio.to_thread(release.wait)
        with self._cond:
            call = Call(method, args, token)
            outages = self._outages.get(method)
            if outages and outages[0][1] in (None, args.get("channel")):
                call.status = outages.popleft()[0]
                call.response = {"ok": False, "error": f"http_{call.status}"}
                self._record(call)
                return Response("<html><body>Internal Server Error</body></html>", status_code=call.status,
                                media_type="text/html")
            limits = self._rate_limits.get(method)
            if limits:
                retry_after = limits.popleft()
                call.limited, call.status = True, 429
                call.response = {"ok": False, "error": "ratelimited"}
                self._record(call)
                return JSONResponse(call.response, status_code=429, headers={"Retry-After": str(retry_after)})
            if method == "apps.connections.open":
                call.response = ({"ok": True, "url": f"{self.url.replace('http', 'ws', 1)}/link"}
                                 if token == self.app_token else {"ok": False, "error": "invalid_auth"})
            elif token != self.token:
                call.response = {"ok": False, "error": "invalid_auth"}
            elif self._failures.get(method):
                call.response = {"ok": False, "error": self._failures[method].popleft()}
            else:
                handler = self._handlers().get(method)
                call.response = handler(args) if handler else {"ok": False, "error": "unknown_method"}
            self._record(call)
            return JSONResponse(call.response)

    def _record(self, call: Call) -> None:  # caller holds the lock
        self.calls.append(call)
        self._cond.notify_all()

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "conversations.replies": self._replies,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "chat.getPermalink": self._permalink,
        }

    # ----------------------------------------------------------------- method handlers (lock held)

    def _new_ts(self) -> str:
        ts = _int_to_ts(self._next_ts)
        self._next_ts += _TS_STEP
        return ts

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"https://{self.team_domain}.slack.com/", "team": self.team,
                "user": "switchboard", "team_id": self.team_id, "user_id": self.bot_user_id,
                "bot_id": self.bot_id, "is_enterprise_install": False}

    def _bot_message(self, text: str, ts: str, args: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "user": self.bot_user_id, "type": "message", "ts": ts, "bot_id": self.bot_id,
            "app_id": self.app_id, "text": text, "team": self.team_id,
            "bot_profile": {"id": self.bot_id, "deleted": False, "name": "switchboard", "updated": 1700000000,
                            "app_id": self.app_id, "user_id": self.bot_user_id, "team_id": self.team_id}}
        for key in ("blocks", "attachments", "metadata"):
            if key in args:
                value = args[key]
                message[key] = json.loads(value) if isinstance(value, str) and value.startswith(("[", "{")) else value
        return message

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        text = args.get("text") or ""
        if not text and not args.get("blocks") and not args.get("attachments"):
            return {"ok": False, "error": "no_text"}
        ts = self._new_ts()
        message = self._bot_message(text, ts, args)
        thread_ts = args.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = thread_ts
            root = self.messages[channel].get(thread_ts)
            if root is not None:
                message["parent_user_id"] = root.get("user")
        self.messages[channel][ts] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": dict(message)}

    def _own_message(self, args: dict[str, Any], not_own: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The bot's message at args' channel+ts, or None and the error Slack answers."""
        channel, ts = args.get("channel"), args.get("ts")
        message = self.messages.get(channel, {}).get(ts) if channel and ts else None
        if message is None:
            return None, {"ok": False, "error": "message_not_found"}
        if message.get("user") != self.bot_user_id:
            return None, {"ok": False, "error": not_own}
        return message, {}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        message, error = self._own_message(args, "cant_update_message")
        if message is None:
            return error
        channel, ts = args["channel"], args["ts"]
        text = args.get("text", message.get("text", ""))
        updated = self._bot_message(text, ts, args)
        for key in ("thread_ts", "parent_user_id", "blocks", "attachments"):
            if key in message and key not in updated:
                updated[key] = message[key]
        updated["edited"] = {"user": self.bot_user_id, "ts": self._new_ts()}
        self.messages[channel][ts] = updated
        return {"ok": True, "channel": channel, "ts": ts, "text": text,
                "message": {k: v for k, v in updated.items() if k != "ts"}}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": self._new_ts()}

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        message, error = self._own_message(args, "cant_delete_message")
        if message is None:
            return error
        channel, ts = args["channel"], args["ts"]
        del self.messages[channel][ts]
        return {"ok": True, "channel": channel, "ts": ts}

    def _reaction_target(self, args: dict[str, Any]) -> tuple[tuple[str, str] | None, str | None]:
        channel, ts, name = args.get("channel"), args.get("timestamp"), args.get("name")
        if not name:
            return None, "invalid_name"
        if not channel or not ts:
            return None, "no_item_specified"
        if self.strict and ts not in self.messages.get(channel, {}):
            return None, "message_not_found"
        return (channel, ts), None

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        key, error = self._reaction_target(args)
        if error:
            return {"ok": False, "error": error}
        users = self.reactions.setdefault(key, {}).setdefault(args["name"], [])
        if self.bot_user_id in users:
            return {"ok": False, "error": "already_reacted"}
        users.append(self.bot_user_id)
        return {"ok": True}

    def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        key, error = self._reaction_target(args)
        if error:
            return {"ok": False, "error": error}
        users = self.reactions.get(key, {}).get(args["name"], [])
        if self.bot_user_id not in users:
            return {"ok": False, "error": "no_reaction"}
        users.remove(self.bot_user_id)
        if not users:
            del self.reactions[key][args["name"]]
        return {"ok": True}

    def _thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        stored = self.messages.get(channel, {})
        root = stored.get(thread_ts)
        replies = sorted((m for m in stored.values() if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts),
                         key=lambda m: _ts_to_int(m["ts"]))
        out: list[dict[str, Any]] = []
        if root is not None:
            root = dict(root)
            if replies:
                reply_users = list(dict.fromkeys(m.get("user") for m in replies if m.get("user")))
                root.update({"thread_ts": thread_ts, "reply_count": len(replies),
                             "reply_users_count": len(reply_users), "latest_reply": replies[-1]["ts"],
                             "reply_users": reply_users, "is_locked": False, "subscribed": False})
            out.append(root)
        out.extend(dict(m) for m in replies)
        return out

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel"), args.get("ts")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not ts:
            return {"ok": False, "error": "invalid_arguments"}
        messages = self._thread(channel, ts)
        if not messages:
            return {"ok": False, "error": "thread_not_found"}
        return {"ok": True, "messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _channel_object(self, channel_id: str, name: str | None, is_private: bool, is_im: bool,
                        is_ext_shared: bool) -> dict[str, Any]:
        channel: dict[str, Any] = {"id": channel_id, "created": 1700000000, "is_archived": False,
                                   "is_im": is_im, "is_org_shared": False, "context_team_id": self.team_id,
                                   "updated": 1700000000000}
        if is_im:
            channel.update({"user": self.bot_user_id, "is_open": True, "priority": 0})
        else:
            channel.update({"name": name or channel_id.lower(), "is_channel": not is_private,
                            "is_group": False, "is_mpim": False, "is_private": is_private,
                            "is_general": False, "is_shared": is_ext_shared, "is_ext_shared": is_ext_shared,
                            "is_pending_ext_shared": False, "is_member": True, "creator": "U0CREATOR",
                            "topic": {"value": "", "creator": "", "last_set": 0},
                            "purpose": {"value": "", "creator": "", "last_set": 0}})
        return channel

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = args.get("channel")
        channel = self.channels.get(channel_id) if channel_id else None
        if channel is None:
            if self.strict or not channel_id:
                return {"ok": False, "error": "channel_not_found"}
            channel = self._channel_object(channel_id, None, channel_id.startswith("G"),
                                           channel_id.startswith("D"), False)
        return {"ok": True, "channel": channel}

    def _user_object(self, user_id: str, name: str, real_name: str, display_name: str, tz: str,
                     is_bot: bool) -> dict[str, Any]:
        return {"id": user_id, "team_id": self.team_id, "name": name, "deleted": False, "color": "9f69e7",
                "real_name": real_name, "tz": tz, "tz_label": tz, "tz_offset": 0, "is_admin": False,
                "is_owner": False, "is_primary_owner": False, "is_restricted": False,
                "is_ultra_restricted": False, "is_bot": is_bot, "is_app_user": False, "updated": 1700000000,
                "profile": {"real_name": real_name, "display_name": display_name,
                            "real_name_normalized": real_name, "display_name_normalized": display_name,
                            "team": self.team_id}}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = args.get("user")
        user = self.users.get(user_id) if user_id else None
        if user is None:
            if self.strict or not user_id:
                return {"ok": False, "error": "user_not_found"}
            user = self._user_object(user_id, user_id.lower(), user_id, user_id.lower(), "Europe/Berlin", False)
        return {"ok": True, "user": user}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel"), args.get("message_ts")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not ts:
            return {"ok": False, "error": "message_not_found"}
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = self.messages.get(channel, {}).get(ts, {}).get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}
