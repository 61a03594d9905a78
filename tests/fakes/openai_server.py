"""A scripted OpenAI-compatible Chat Completions server (POST /v1/chat/completions).

Each request consumes the next scripted step and gets the real wire format: a
`chat.completion` JSON object, or, with `"stream": true`, `chat.completion.chunk`
Server-Sent Events ending with `data: [DONE]`. A step can also be an HTTP error.
Every request body is recorded for assertions.

A step may ask for tool calls (`calls`): the answer then carries `message.tool_calls` with
`finish_reason: "tool_calls"`, or, streamed, `delta.tool_calls` pieces keyed by `index`
whose `function.arguments` arrive split across chunks, as OpenAI sends them.

POST /v1/moderations answers from its own script, `moderations` (one `Moderated` per
request; none left: nothing flagged), in the shape of OpenAI's moderation object: `id`,
`model`, one result per input with `flagged`, every category by its wire name
(`self-harm/intent`, `harassment/threatening`…) in `categories` and `category_scores`.
A step can be an HTTP error, or be held until the test releases it (a slow endpoint).

Every completion carries a realistic `usage` (prompt and completion tokens counted from
the request's messages and the answer, about as a BPE tokenizer counts English: words and
punctuation, plus the chat format's few tokens per message; a step may set its own
`usage`); a stream carries it in a last chunk with no choices when the request asks with
`stream_options: {"include_usage": true}`, as OpenAI does, and not otherwise. `latency`
(seconds) delays every completion, and a `responder` writes the step of a request when
none is scripted, for benchmarks of slow and fast endpoints.

A completion step can also hang (`hang`): no answer (streamed: no more chunks after its
`chunks`) until the client goes away or the test calls `release()`, as a stuck endpoint
behaves. A fixture that scripts one calls `release()` at teardown, so the server can stop.
`held` counts the requests that hung, `abandoned` is set once a client gave one up (closed
its connection). Or it can answer an unparsable `body` with HTTP 200: garbage, or JSON
missing `choices`, sent as it is to a streamed request too (a proxy's page, say).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import serve


@dataclass
class Call:
    """A scripted tool call: `arguments` is a dict (sent as JSON) or raw text (e.g. broken JSON)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str = ""

    def raw_arguments(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Step:
    """One scripted answer: `text` (split into `chunks` when streamed), tool `calls`, or an
    HTTP `status` error."""

    text: str = ""
    chunks: list[str] | None = None
    status: int = 200
    calls: list[Call] = field(default_factory=list)
    hang: bool = False  # held (after its `chunks`, when streamed) until the client leaves or release()
    body: str | None = None  # sent as it is, HTTP 200, instead of a completion
    content_type: str = "application/json"  # of `body`
    usage: tuple[int, int] | None = None  # (prompt, completion) tokens to report instead of the count

    def tool_calls(self) -> list[dict[str, Any]]:
        return [{"id": c.id or f"call_{n}_{abs(hash(c.name)) % 10_000}", "type": "function",
                 "function": {"name": c.name, "arguments": c.raw_arguments()}} for n, c in enumerate(self.calls)]


MODERATION_CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
                         "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
                         "sexual/minors", "violence", "violence/graphic")


@dataclass
class Moderated:
    """One scripted moderation answer: the categories flagged (wire names), or an HTTP
    `status` error; with `hold`, the answer waits until the test sets that event."""

    categories: tuple[str, ...] = ()
    status: int = 200
    hold: threading.Event | None = None

    def result(self) -> dict[str, Any]:
        return {"flagged": bool(self.categories),
                "categories": {c: c in self.categories for c in MODERATION_CATEGORIES},
                "category_scores": {c: 0.93 if c in self.categories else 0.0004 for c in MODERATION_CATEGORIES},
                "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES}}


@dataclass
class ScriptedOpenAI:
    steps: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    moderations: list[Moderated] = field(default_factory=list)
    moderation_requests: list[dict[str, Any]] = field(default_factory=list)
    held: int = 0  # completion requests that hung
    latency: float = 0.0  # seconds every completion waits before answering (benchmarks)
    responder: Callable[[dict[str, Any]], Step] | None = None  # writes a step from the request when none is scripted
    abandoned: threading.Event = field(default_factory=threading.Event)  # a client gave up a held request
    _holds: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)
    _released: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        """Let every held request end (and any later one not hang): call at teardown."""
        with self._lock:
            self._released = True
            for loop, event in self._holds:
                loop.call_soon_threadsafe(event.set)

    async def _hold(self) -> None:
        """Wait, in the server's loop, until release() (no sleeping, no polling)."""
        event = asyncio.Event()
        with self._lock:
            if self._released:
                return
            self._holds.append((asyncio.get_running_loop(), event))
            self.held += 1
        await event.wait()

    async def _hang(self, request: Request) -> Response:
        """No answer until the client closes the connection (ASGI `http.disconnect`) or release()."""
        gone = asyncio.ensure_future(request.receive())  # the body was read: what comes next is the disconnect
        released = asyncio.ensure_future(self._hold())
        done, pending = await asyncio.wait({gone, released}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if gone in done:
            self.abandoned.set()
        return JSONResponse({"error": {"message": "released", "type": "server_error"}}, status_code=503)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"]),
                                 Route("/v1/moderations", self.moderate, methods=["POST"])])

    async def moderate(self, request: Request) -> Response:
        body = await request.json()
        self.moderation_requests.append(body)
        step = self.moderations.pop(0) if self.moderations else Moderated()
        if step.hold is not None:
            await asyncio.to_thread(step.hold.wait, 30)
        if step.status != 200:
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error", "code": None}},
                                status_code=step.status)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse({"id": "modr-test", "model": body.get("model", "omni-moderation-latest"),
                             "results": [step.result() for _ in inputs]})

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if not self.steps and self.responder is None:
            return JSONResponse({"error": {"message": "no scripted step left", "type": "server_error"}}, 500)
        step = self.steps.pop(0) if self.steps else self.responder(body)  # type: ignore[misc]
        if self.latency:
            await asyncio.sleep(self.latency)
        if step.status != 200:
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error", "code": None}},
                                status_code=step.status)
        if step.body is not None:
            return Response(step.body, media_type=step.content_type)
        if step.hang and not (body.get("stream") and step.chunks):
            return await self._hang(request)
        if body.get("stream"):
            return StreamingResponse(self._stream(body, step), media_type="text/event-stream")
        text = step.text or "".join(step.chunks or ())
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if step.calls else "")}
        if step.calls:
            message["tool_calls"] = step.tool_calls()
        return JSONResponse({
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": message,
                         "logprobs": None, "finish_reason": "tool_calls" if step.calls else "stop"}],
            "usage": usage(body, step)})

    async def _stream(self, body: dict[str, Any], step: Step):
        model = body["model"]

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            data = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                 "finish_reason": finish}]}
            if (body.get("stream_options") or {}).get("include_usage"):
                data["usage"] = None  # every chunk says null, the last one (no choices) the totals
            return f"data: {json.dumps(data)}\n\n".encode()
        yield chunk({"role": "assistant", "content": None if step.calls and not step.text else ""})
        for piece in step.chunks or ([step.text] if step.text or not step.calls else []):
            yield chunk({"content": piece})
        if step.hang:  # stalls halfway; Starlette cancels this generator when the client leaves
            try:
                await self._hold()
            except asyncio.CancelledError:
                self.abandoned.set()
                raise
        for index, call in enumerate(step.tool_calls()):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2  # arguments arrive split, as OpenAI streams them
            yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"], "arguments": ""}}]})
            for part in (arguments[:half], arguments[half:]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        yield chunk({}, "tool_calls" if step.calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            data = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": [], "usage": usage(body, step)}
            yield f"data: {json.dumps(data)}\n\n".encode()
        yield b"data: [DONE]\n\n"


TOKEN = re.compile(r"\w+|[^\w\s]")


@contextlib.contextmanager
def running() -> Iterator[ScriptedOpenAI]:
    """A scripted server on 127.0.0.1 for the block, its `base_url` set (…/v1)."""
    scripted = ScriptedOpenAI()
    with serve(scripted.app()) as url:
        scripted.base_url = f"{url}/v1"
        yield scripted


def tokens(text: str) -> int:
    """About what a BPE tokenizer counts for English text: words and punctuation marks."""
    return len(TOKEN.findall(text))


def usage(body: dict[str, Any], step: Step) -> dict[str, int]:
    """The `usage` object of a completion answering `body` with `step`."""
    if step.usage is not None:
        prompt, completion = step.usage
    else:
        prompt = 3 + sum(4 + tokens(str(m.get("content") or "")) for m in body.get("messages", []))
        prompt += sum(tokens(json.dumps(t)) for t in body.get("tools", []))
        completion = tokens(step.text or "".join(step.chunks or ())) + sum(
            tokens(c.raw_arguments()) + 3 for c in step.calls)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
