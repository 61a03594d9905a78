"""A fake Telegram Bot API server (POST or GET /bot<token>/<method>) speaking the real wire format.

Point python-telegram-bot at it with ``telegram.Bot(fake.token, base_url=fake.base_url(url))``.
Parameters are accepted as JSON, urlencoded or multipart form data (PTB sends form fields whose
non-string values are JSON-encoded). Answers are ``{"ok": true, "result": ...}`` in Telegram's
shapes, and errors are ``{"ok": false, "error_code": N, "description": "..."}`` with the matching
HTTP status, so PTB raises its real exceptions (InvalidToken, RetryAfter, Forbidden, BadRequest).

Tests script failures with ``rate_limit``, ``block`` (or ``refuse``: a customer gone another
way, e.g. 400 "chat not found"), ``outage`` (HTTP 5xx with an HTML page, as
Telegram's front end answers in an incident) and ``hold`` (a call that hangs until released);
``parse_mode="HTML"`` text is validated like Telegram does (allowed tags only, properly nested,
entities escaped), and the returned
Message carries the parsed plain text plus entities. ``push_update`` queues updates for
``getUpdates`` (offset / limit / long-poll ``timeout`` / allowed_updates honoured). Every call is
recorded as a ``Call`` (with the HTTP status once answered); ``wait_for`` blocks on a condition until
enough calls arrived, or were answered.
"""
from __future__ import annotations

import email.policy
import json
import re
import threading
import time
import zlib
from collections import defaultdict, deque
from email.parser import BytesParser
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_TEXT = 4096

METHODS = ("getMe", "sendMessage", "editMessageText", "sendChatAction", "answerCallbackQuery",
           "setWebhook", "deleteWebhook", "getWebhookInfo", "getUpdates", "setMyCommands")
_CANONICAL = {m.lower(): m for m in METHODS}

# Form fields (PTB's and curl's encoding) that carry JSON, integers or booleans.
_JSON_FIELDS = {"reply_markup", "entities", "caption_entities", "allowed_updates", "commands", "scope",
                "link_preview_options", "reply_parameters"}
_INT_FIELDS = {"message_id", "message_thread_id", "offset", "limit", "timeout", "max_connections",
               "reply_to_message_id", "cache_time", "direct_messages_topic_id"}
_BOOL_FIELDS = {"disable_web_page_preview", "disable_notification", "protect_content", "show_alert",
                "drop_pending_updates", "allow_sending_without_reply", "allow_paid_broadcast"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 0  # the HTTP status answered; 0 while the call is still being handled


class TelegramError(Exception):
    """Raised inside a handler to answer with Telegram's error shape."""

    def __init__(self, code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


def _bad(description: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {description}")


# --- HTML parse_mode validation (mirrors the Bot API's "Formatting options", HTML style) -------

_TAG_ENTITY = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
               "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
               "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
               "blockquote": "blockquote", "tg-emoji": "custom_emoji"}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTR = re.compile(r"""\s*([a-zA-Z_-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_ATTRS = re.compile(r"""(?:\s+[a-zA-Z_-]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?)*\s*/?""")


def _utf16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def _byte(text: str, i: int) -> int:
    return len(text[:i].encode())


def _entity_at(text: str, i: int) -> tuple[str, int]:
    """Decode the character entity starting at text[i] == '&'; returns (char, next index)."""
    end = text.find(";", i)
    name = text[i + 1:end] if end != -1 else ""
    if end != -1 and name in _NAMED:
        return _NAMED[name], end + 1
    if end != -1 and re.fullmatch(r"#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}", name):
        code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
        if 0 < code <= 0x10FFFF:
            return chr(code), end + 1
    raise _bad(f"can't parse entities: Character entity expected at byte offset {_byte(text, i)}: "
               "use &lt;, &gt;, &amp; or &quot; for <, >, & and \"")


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-HTML into (plain text, entities); raise a 400 TelegramError like the Bot API."""
    out: list[str] = []
    stack: list[tuple[str, int, dict]] = []  # (tag, utf16 offset, entity)
    entities: list[dict[str, Any]] = []
    length = 0  # UTF-16 length of out
    i = 0
    while i < len(text):
        c = text[i]
        if c == "&":
            ch, i = _entity_at(text, i)
            out.append(ch)
            length += _utf16(ch)
            continue
        if c != "<":
            out.append(c)
            length += _utf16(c)
            i += 1
            continue
        offset = _byte(text, i)
        end = text.find(">", i)
        if end == -1:
            raise _bad(f"can't parse entities: Unclosed start tag at byte offset {offset}")
        inner = text[i + 1:end]
        i = end + 1
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise _bad(f"can't parse entities: Unexpected end tag at byte offset {offset}")
            open_tag, start, entity = stack.pop()
            if name != open_tag:
                raise _bad(f"can't parse entities: Unmatched end tag at byte offset {offset}, "
                           f"expected \"</{open_tag}>\", found \"</{name}>\"")
            if length > start:
                entity["offset"], entity["length"] = start, length - start
                entities.append(entity)
            continue
        m = re.match(r"[a-zA-Z][a-zA-Z0-9-]*", inner)
        if not m:
            raise _bad(f"can't parse entities: Unsupported start tag \"{inner}\" at byte offset {offset}")
        name = m.group(0).lower()
        if name not in _TAG_ENTITY:
            raise _bad(f"can't parse entities: Unsupported start tag \"{name}\" at byte offset {offset}")
        attrs: dict[str, str] = {}
        rest = inner[m.end():]
        for a in _ATTR.finditer(rest):
            if a.group(1):
                value = next((g for g in a.groups()[1:] if g is not None), "")
                attrs[a.group(1).lower()] = re.sub(r"&(lt|gt|amp|quot);", lambda x: _NAMED[x.group(1)], value)
        if not _ATTRS.fullmatch(rest):
            raise _bad(f"can't parse entities: Unclosed start tag at byte offset {offset}")
        entity: dict[str, Any] = {"type": _TAG_ENTITY[name]}
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _bad(f"can't parse entities: Tag \"span\" must have class \"tg-spoiler\" at byte offset {offset}")
        if name == "a":
            entity["url"] = attrs.get("href", "")  # a link without href is dropped below
        if name == "tg-emoji":
            if "emoji-id" not in attrs:
                raise _bad(f"can't parse entities: Custom emoji entity must contain a tg://emoji URL "
                           f"at byte offset {offset}")
            entity["custom_emoji_id"] = attrs["emoji-id"]
        if name == "blockquote" and "expandable" in attrs:
            entity["type"] = "expandable_blockquote"
        if name == "code" and stack and stack[-1][0] == "pre" and attrs.get("class", "").startswith("language-"):
            stack[-1][2]["language"] = attrs["class"][len("language-"):]
            entity["merged"] = True  # Telegram folds <pre><code class="language-x"> into one pre entity
        stack.append((name, length, entity))
    if stack:
        raise _bad(f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1][0]}\"")
    entities = [e for e in entities if not e.get("merged") and (e["type"] != "text_link" or e.get("url"))]
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


# --- the fake server ------------------------------------------------------------------------------

def _coerce(key: str, value: str) -> Any:
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key in _INT_FIELDS or (key == "chat_id" and re.fullmatch(r"-?\d+", value)):
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    if key in _BOOL_FIELDS:
        return value.lower() == "true"
    return value


@dataclass
class FakeTelegram:
    token: str = "123456:TEST-token"
    bot_id: int = 123456
    bot_username: str = "switchboard_bot"
    bot_first_name: str = "Switchboard"
    max_poll_seconds: float = 10.0  # upper bound on getUpdates long-poll waits
    calls: list[Call] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)   # pending, oldest first
    messages: dict[tuple[Any, int], dict[str, Any]] = field(default_factory=dict)  # (chat_id, message_id) -> Message
    blocked: dict[Any, tuple[int, str]] = field(default_factory=dict)  # chat -> (status, description) it answers
    webhook: dict[str, Any] = field(default_factory=dict)         # url, secret_token, ... from setWebhook
    commands: list[dict[str, Any]] = field(default_factory=list)
    _rate_limits: dict[str, list[int]] = field(default_factory=dict)  # method -> [remaining, retry_after]
    _outages: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))  # statuses to answer; 0: ok
    _holds: dict[str, threading.Event] = field(default_factory=dict)
    _next_message_id: dict[Any, int] = field(default_factory=dict)
    _next_update_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cond: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)

    # ---- wiring -------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/{method}", self.endpoint, methods=["GET", "POST"])])

    @staticmethod
    def base_url(url: str) -> str:
        """The `base_url` for telegram.Bot: PTB requests f"{base_url}{token}/{method}"."""
        return f"{url.rstrip('/')}/bot"

    @property
    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.bot_first_name,
                "username": self.bot_username}

    # ---- test controls -------------------------------------------------------------------------------
    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls to `method` answer HTTP 429 with parameters.retry_after."""
        with self._lock:
            self._rate_limits[_CANONICAL.get(method.lower(), method)] = [times, retry_after]

    def outage(self, method: str, times: int, status: int = 500, after: int = 0) -> None:
        """`times` calls to `method` answer HTTP `status` with an HTML error page: the next
        ones, or those after the next `after` (which are answered as usual)."""
        with self._lock:
            self._outages[_CANONICAL.get(method.lower(), method)].extend([0] * after + [status] * times)

    def hold(self, method: str) -> threading.Event:
        """The next call to `method` hangs (recorded first as a `held:{method}` call) until the
        returned event is set; then it is answered as usual."""
        release = threading.Event()
        with self._lock:
            self._holds[_CANONICAL.get(method.lower(), method)] = release
        return release

    def block(self, chat_id: Any) -> None:
        """sendMessage to `chat_id` answers 403 as if the user blocked the bot."""
        self.refuse(chat_id, 403, "Forbidden: bot was blocked by the user")

    def refuse(self, chat_id: Any, code: int, description: str) -> None:
        """sendMessage (and sendChatAction) to `chat_id` answer `code` with the Bot API's
        `description`: 403 "Forbidden: user is deactivated", 400 "Bad Request: chat not found"..."""
        with self._lock:
            self.blocked[chat_id] = (code, description)

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (assigning update_id when missing); wakes long polls."""
        with self._cond:
            update = dict(update)
            if "update_id" not in update:
                update["update_id"] = self._next_update_id
            self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
            self.updates.append(update)
            self._cond.notify_all()
            return update

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10, answered: bool = False) -> list[Call]:
        """Block until at least `count` calls to `method` were recorded (with `answered`: and answered,
        so their effects, e.g. a sent message, are visible); TimeoutError otherwise."""
        def matching() -> list[Call]:
            return [c for c in self.calls if c.method == method and (c.status or not answered)]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(f"expected {count} {method} call(s) within {timeout}s, got {len(matching())}")
            return matching()

    def sent_texts(self, chat_id: Any | None = None) -> list[str]:
        """Texts of successful sendMessage calls (optionally to one chat), in order."""
        with self._lock:
            return [m["text"] for m in self.messages.values()
                    if chat_id is None or m["chat"]["id"] == chat_id]

    # ---- HTTP --------------------------------------------------------------------------------------
    async def endpoint(self, request: Request) -> Response:
        token, method = request.path_params["token"], request.path_params["method"]
        if token != self.token:
            return self._error(TelegramError(401, "Unauthorized"))
        canonical = _CANONICAL.get(method.lower())
        if canonical is None:
            return self._error(TelegramError(404, "Not Found"))
        params = await self._params(request)
        with self._cond:
            release = self._holds.pop(canonical, None)
            if release is not None:
                self.calls.append(Call(f"held:{canonical}", params, time.time()))
                self._cond.notify_all()
        if release is not None:
            await run_in_threadpool(release.wait)
        call = Call(canonical, params, time.time())
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
            outages = self._outages.get(canonical)
            outage = outages.popleft() if outages else 0
        if outage:
            response: Response = Response(f"<html><body><h1>{outage} Server Error</h1></body></html>",
                                          status_code=outage, media_type="text/html")
        else:
            try:
                response = JSONResponse({"ok": True,
                                         "result": await run_in_threadpool(self._dispatch, canonical, params)})
            except TelegramError as err:
                response = self._error(err)
        with self._cond:
            call.status = response.status_code
            self._cond.notify_all()
        return response

    @staticmethod
    async def _params(request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {k: _coerce(k, v) for k, v in request.query_params.items()}
        ctype = request.headers.get("content-type", "")
        if "application/json" in ctype:
            body = await request.body()
            if body:
                params.update(json.loads(body))
        elif "application/x-www-form-urlencoded" in ctype:
            # parsed by hand so the fake needs no python-multipart
            form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
            params.update({k: _coerce(k, v) for k, v in form})
        elif "multipart/form-data" in ctype:
            raw = f"Content-Type: {ctype}\r\n\r\n".encode() + await request.body()
            for part in BytesParser(policy=email.policy.HTTP).parsebytes(raw).iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name and part.get_filename() is None:  # uploaded files are not recorded
                    params[name] = _coerce(name, part.get_content() if part.get_content_maintype() == "text"
                                           else part.get_payload(decode=True).decode())
        return params

    @staticmethod
    def _error(err: TelegramError) -> JSONResponse:
        body: dict[str, Any] = {"ok": False, "error_code": err.code, "description": err.description}
        if err.parameters:
            body["parameters"] = err.parameters
        return JSONResponse(body, status_code=err.code)

    def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        with self._lock:
            limit = self._rate_limits.get(method)
            if limit and limit[0] > 0:
                limit[0] -= 1
                raise TelegramError(429, f"Too Many Requests: retry after {limit[1]}",
                                    {"retry_after": limit[1]})
        return getattr(self, "_" + method)(params)

    # ---- methods ----------------------------------------------------------------------------------
    def _getMe(self, params: dict) -> dict:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False, "has_main_web_app": False}

    @staticmethod
    def _chat(chat_id: Any) -> dict[str, Any]:
        if isinstance(chat_id, str) and not re.fullmatch(r"-?\d+", chat_id):
            return {"id": -1000000000000 - zlib.crc32(chat_id.encode()) % 10**9, "type": "channel",
                    "username": chat_id.lstrip("@")}
        cid = int(chat_id)
        if cid > 0:
            return {"id": cid, "type": "private"}
        return {"id": cid, "type": "supergroup" if str(cid).startswith("-100") else "group"}

    @staticmethod
    def _text(params: dict) -> tuple[str, list | None]:
        text = params.get("text")
        if text is None or text == "":
            raise _bad("message text is empty")
        text = str(text)
        entities = params.get("entities")
        if str(params.get("parse_mode", "")).lower() == "html":
            text, entities = parse_html(text)
            if not text.strip():
                raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        return text, entities or None

    def _sendMessage(self, params: dict) -> dict:
        if "chat_id" not in params:
            raise _bad("chat_id is empty")
        chat = self._chat(params["chat_id"])
        text, entities = self._text(params)
        with self._lock:
            refused = self.blocked.get(params["chat_id"]) or self.blocked.get(chat["id"])
            if refused is not None:
                raise TelegramError(*refused)
            message_id = self._next_message_id.get(chat["id"], 1)
            self._next_message_id[chat["id"]] = message_id + 1
            message: dict[str, Any] = {"message_id": message_id, "from": self.bot_user, "chat": chat,
                                       "date": int(time.time()), "text": text}
            if entities:
                message["entities"] = entities
            if params.get("message_thread_id") is not None:
                message["message_thread_id"] = params["message_thread_id"]
                message["is_topic_message"] = True
            if params.get("reply_markup") is not None:
                message["reply_markup"] = params["reply_markup"]
            self.messages[(chat["id"], message_id)] = message
            return message

    def _editMessageText(self, params: dict) -> Any:
        text, entities = self._text(params)
        if "inline_message_id" in params:
            return True
        if "chat_id" not in params or "message_id" not in params:
            raise _bad("chat_id is empty" if "chat_id" not in params else "message identifier is not specified")
        chat = self._chat(params["chat_id"])
        with self._lock:
            old = self.messages.get((chat["id"], int(params["message_id"])))
            if old is None:
                raise _bad("message to edit not found")
            markup = params.get("reply_markup")
            if old["text"] == text and old.get("entities") == entities and old.get("reply_markup") == markup:
                raise _bad("message is not modified: specified new message content and reply markup are "
                           "exactly the same as a current content and reply markup of the message")
            new = {**old, "text": text, "edit_date": int(time.time())}
            new.pop("entities", None)
            new.pop("reply_markup", None)
            if entities:
                new["entities"] = entities
            if markup is not None:
                new["reply_markup"] = markup
            self.messages[(chat["id"], old["message_id"])] = new
            return new

    def _sendChatAction(self, params: dict) -> bool:
        if "chat_id" not in params or "action" not in params:
            raise _bad("chat_id is empty" if "chat_id" not in params else "action is empty")
        with self._lock:
            if params["chat_id"] in self.blocked:
                raise TelegramError(*self.blocked[params["chat_id"]])
        return True

    def _answerCallbackQuery(self, params: dict) -> bool:
        if not params.get("callback_query_id"):
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        return True

    def _setWebhook(self, params: dict) -> bool:
        with self._lock:
            self.webhook = {k: v for k, v in params.items()}
        return True

    def _deleteWebhook(self, params: dict) -> bool:
        with self._lock:
            self.webhook = {}
            if params.get("drop_pending_updates"):
                self.updates.clear()
        return True

    def _getWebhookInfo(self, params: dict) -> dict:
        with self._lock:
            info: dict[str, Any] = {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                                    "pending_update_count": len(self.updates)}
            if self.webhook.get("max_connections"):
                info["max_connections"] = self.webhook["max_connections"]
            if self.webhook.get("allowed_updates"):
                info["allowed_updates"] = self.webhook["allowed_updates"]
            return info

    def _getUpdates(self, params: dict) -> list[dict]:
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = min(max(float(params.get("timeout") or 0), 0), self.max_poll_seconds)
        allowed = params.get("allowed_updates") or None

        def ready() -> list[dict]:
            return [u for u in self.updates if u["update_id"] >= offset
                    and (allowed is None or any(k in allowed for k in u if k != "update_id"))][:limit]

        with self._cond:
            if self.webhook.get("url"):
                raise TelegramError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                         "use deleteWebhook to delete the webhook first")
            if offset:  # confirms (forgets) every update below offset, as Telegram does
                self.updates[:] = [u for u in self.updates if u["update_id"] >= offset]
            self._cond.wait_for(ready, timeout)
            return ready()

    def _setMyCommands(self, params: dict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("parameter \"commands\" is not a valid JSON array")
        with self._lock:
            self.commands = commands
        return True
