"""A scripted OpenAI-compatible Chat Completions server (POST /v1/chat/completions).

Each request consumes the next scripted step and gets the real wire format: a
`chat.completion` JSON object, or, with `"stream": true`, `chat.completion.chunk`
Server-Sent Events ending with `data: [DONE]`. A step can also be an HTTP error.
Every request body is recorded for assertions.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Step:
    """One scripted answer: `text` (split into `chunks` when streamed) or an HTTP `status` error."""

    text: str = ""
    chunks: list[str] | None = None
    status: int = 200


@dataclass
class ScriptedOpenAI:
    steps: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if not self.steps:
            return JSONResponse({"error": {"message": "no scripted step left", "type": "server_error"}}, 500)
        step = self.steps.pop(0)
        if step.status != 200:
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error", "code": None}},
                                status_code=step.status)
        if body.get("stream"):
            return StreamingResponse(self._stream(body["model"], step), media_type="text/event-stream")
        return JSONResponse({
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": step.text},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})

    async def _stream(self, model: str, step: Step):
        def chunk(delta: dict, finish: str | None = None) -> bytes:
            data = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                 "finish_reason": finish}]}
            return f"data: {json.dumps(data)}\n\n".encode()
        yield chunk({"role": "assistant", "content": ""})
        for piece in step.chunks or [step.text]:
            yield chunk({"content": piece})
        yield chunk({}, "stop")
        yield b"data: [DONE]\n\n"
