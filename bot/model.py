"""The LLM port and its implementation on the `openai` client.

Any OpenAI-compatible endpoint works (OpenAI, Azure, vLLM, llama.cpp's server, Ollama):
set OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_MODEL. Every failure of the endpoint
(unreachable, timeout, HTTP error, malformed answer) surfaces as `ModelError`, which the
engine turns into an apology and an offer of a human. A malformed answer includes one
that parses as nothing: a body without `choices`, or a streamed answer that never says
it finished (a proxy's page instead of events, a stream cut off), which would otherwise
read as an empty answer and be declined as "not found".

The client retries once (a 5xx, a 429, a dropped connection), and connecting gives up
after 5 s. Each call's tokens (the `usage` the endpoint returns; streamed, the last chunk,
asked for with `stream_options.include_usage`) are charged to the turn (bot/accounting.py). What bounds a turn is the profile's `turn_deadline` (bot/engine.py), not the
per-call timeout: a hanging endpoint is cut there, however long `timeout` is.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, Sequence

import openai

from bot import accounting
from bot.accounting import Ledger
from bot.errors import ModelError
from bot.memory import estimate_tokens

OnText = Callable[[str], Awaitable[None]]
CONNECT_TIMEOUT = 5.0  # seconds: an endpoint that can't be reached is given up early, and retried once


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asks for; `arguments` is the raw JSON text it wrote."""

    id: str
    name: str
    arguments: str

    def message(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class Completion:
    """A model's turn: text, and the tool calls it asks for (none: it has answered)."""

    text: str
    calls: tuple[ToolCall, ...] = ()

    def message(self) -> dict[str, Any]:
        """The assistant message to send back with the tools' results."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.calls:
            message["tool_calls"] = [c.message() for c in self.calls]
        return message


class ChatModel(Protocol):
    """Completes a chat; streams text deltas to `on_text` when given."""

    name: str

    async def complete(self, messages: Sequence[dict], *, on_text: OnText | None = None,
                       max_tokens: int = 700) -> str: ...

    async def step(self, messages: Sequence[dict], tools: Sequence[dict], *, on_text: OnText | None = None,
                   max_tokens: int = 700) -> Completion:
        """One model turn with `tools` offered (OpenAI tools protocol)."""
        ...


class OpenAIChatModel:
    """Chat completions through `openai.AsyncOpenAI`."""

    def __init__(self, model: str, base_url: str = "", api_key: str = "", timeout: float = 60.0,
                 max_retries: int = 1, ledger: Ledger | None = None):
        self.name = model
        self.ledger = ledger  # running token and cost totals for /metrics (bot/accounting.py)
        self.client = openai.AsyncOpenAI(base_url=base_url or None, api_key=api_key or "not-needed",
                                         timeout=openai.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
                                         max_retries=max_retries)

    async def complete(self, messages: Sequence[dict], *, on_text: OnText | None = None,
                       max_tokens: int = 700) -> str:
        return (await self.step(messages, (), on_text=on_text, max_tokens=max_tokens)).text

    async def step(self, messages: Sequence[dict], tools: Sequence[dict], *, on_text: OnText | None = None,
                   max_tokens: int = 700) -> Completion:
        extra: dict[str, Any] = {"tools": list(tools)} if tools else {}
        try:
            if on_text is None:
                response = await self.client.chat.completions.create(
                    model=self.name, messages=list(messages), max_tokens=max_tokens, temperature=0, **extra)
                completion = _completion(response)
                self._charge(messages, completion, getattr(response, "usage", None))
                return completion
            return await self._stream(messages, on_text, max_tokens, extra)
        except openai.APIStatusError as exc:
            raise ModelError(f"LLM endpoint answered HTTP {exc.status_code}") from exc
        except openai.APITimeoutError as exc:
            raise ModelError("LLM endpoint timed out") from exc
        except openai.APIConnectionError as exc:
            raise ModelError("LLM endpoint unreachable") from exc
        except (openai.OpenAIError, json.JSONDecodeError, IndexError, AttributeError) as exc:
            raise ModelError(f"LLM endpoint gave an unusable answer ({type(exc).__name__})") from exc

    async def _stream(self, messages: Sequence[dict], on_text: OnText, max_tokens: int,
                      extra: dict[str, Any]) -> Completion:
        streamed = _Streamed()
        stream = await self.client.chat.completions.create(
            model=self.name, messages=list(messages), max_tokens=max_tokens, temperature=0, stream=True,
            stream_options={"include_usage": True}, **extra)
        usage = None
        async for chunk in stream:
            usage = getattr(chunk, "usage", None) or usage  # the last chunk, with no choices, when asked for
            text = streamed.add(chunk.choices[0] if chunk.choices else None)
            if text:
                await on_text(text)
        if not streamed.finished:
            raise ModelError("LLM endpoint's stream ended without a finish_reason (not a stream, or cut off)")
        completion = streamed.completion()
        self._charge(messages, completion, usage)
        return completion

    def _charge(self, messages: Sequence[dict], completion: Completion, usage: Any) -> None:
        """Charge the call to the turn (bot/accounting.py): the endpoint's `usage`, else an estimate."""
        tokens_in, tokens_out = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
        if isinstance(tokens_in, int) and isinstance(tokens_out, int):
            accounting.charge(self.name, tokens_in, tokens_out, self.ledger)
            return
        sent = sum(estimate_tokens(str(m.get("content") or "")) for m in messages)
        written = estimate_tokens(completion.text + "".join(c.arguments for c in completion.calls))
        accounting.charge(self.name, sent, written, self.ledger, estimated=True)

    async def close(self) -> None:
        await self.client.close()


def _completion(response: Any) -> Completion:
    """The model's turn in a non-streamed answer. A body that isn't a completion (a proxy's
    page comes back as text, JSON without `choices` as an empty object) raises ModelError."""
    choices = getattr(response, "choices", None)
    message = choices[0].message if isinstance(choices, list) and choices else None
    if message is None:
        raise ModelError(f"LLM endpoint gave an unusable answer (no message in its {type(response).__name__})")
    calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments or "") for c in message.tool_calls or ())
    return Completion(message.content or "", calls)


class _Streamed:
    """What a stream said so far: text, tool calls (they arrive in pieces, keyed by index),
    and whether a choice finished (a stream without a `finish_reason` is not a whole answer)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.finished = False

    def add(self, choice: Any) -> str:
        """Take one chunk's choice; returns its new text."""
        if choice is None:
            return ""
        self.finished = self.finished or choice.finish_reason is not None
        delta = choice.delta
        for piece in (delta.tool_calls if delta else None) or ():
            call = self.calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = piece.id or call["id"]
            if piece.function is not None:
                call["name"] += piece.function.name or ""
                call["arguments"] += piece.function.arguments or ""
        text = (delta.content if delta else None) or ""
        if text:
            self.parts.append(text)
        return text

    def completion(self) -> Completion:
        return Completion("".join(self.parts), tuple(ToolCall(c["id"], c["name"], c["arguments"])
                                                     for _, c in sorted(self.calls.items())))
