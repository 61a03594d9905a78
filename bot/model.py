"""The LLM port and its implementation on the `openai` client.

Any OpenAI-compatible endpoint works (OpenAI, Azure, vLLM, llama.cpp's server, Ollama):
set OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_MODEL. Every failure of the endpoint
(unreachable, timeout, HTTP error, malformed answer) surfaces as `ModelError`, which the
engine turns into an apology and an offer of a human.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, Sequence

import openai

from bot.errors import ModelError

OnText = Callable[[str], Awaitable[None]]


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
                 max_retries: int = 2):
        self.name = model
        self.client = openai.AsyncOpenAI(base_url=base_url or None, api_key=api_key or "not-needed",
                                         timeout=timeout, max_retries=max_retries)

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
                message = response.choices[0].message
                calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments or "")
                              for c in message.tool_calls or ())
                return Completion(message.content or "", calls)
            return await self._stream(messages, on_text, max_tokens, extra)
        except openai.APIStatusError as exc:
            raise ModelError(f"LLM endpoint answered HTTP {exc.status_code}") from exc
        except openai.APITimeoutError as exc:
            raise ModelError("LLM endpoint timed out") from exc
        except openai.APIConnectionError as exc:
            raise ModelError("LLM endpoint unreachable") from exc
        except (openai.OpenAIError, IndexError, AttributeError) as exc:
            raise ModelError(f"LLM endpoint gave an unusable answer ({type(exc).__name__})") from exc

    async def _stream(self, messages: Sequence[dict], on_text: OnText, max_tokens: int,
                      extra: dict[str, Any]) -> Completion:
        parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}  # streamed tool calls arrive in pieces, keyed by index
        stream = await self.client.chat.completions.create(
            model=self.name, messages=list(messages), max_tokens=max_tokens, temperature=0, stream=True, **extra)
        async for chunk in stream:
            delta = chunk.choices[0].delta if chunk.choices else None
            if delta is None:
                continue
            if delta.content:
                parts.append(delta.content)
                await on_text(delta.content)
            for piece in delta.tool_calls or ():
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = piece.id or call["id"]
                if piece.function is not None:
                    call["name"] += piece.function.name or ""
                    call["arguments"] += piece.function.arguments or ""
        return Completion("".join(parts), tuple(ToolCall(c["id"], c["name"], c["arguments"])
                                                for _, c in sorted(calls.items())))

    async def close(self) -> None:
        await self.client.close()
