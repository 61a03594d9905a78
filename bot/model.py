"""The LLM port and its implementation on the `openai` client.

Any OpenAI-compatible endpoint works (OpenAI, Azure, vLLM, llama.cpp's server, Ollama):
set OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_MODEL. Every failure of the endpoint
(unreachable, timeout, HTTP error, malformed answer) surfaces as `ModelError`, which the
engine turns into an apology and an offer of a human.
"""
from __future__ import annotations

from typing import Awaitable, Callable, Protocol, Sequence

import openai

from bot.errors import ModelError

OnText = Callable[[str], Awaitable[None]]


class ChatModel(Protocol):
    """Completes a chat; streams text deltas to `on_text` when given."""

    name: str

    async def complete(self, messages: Sequence[dict], *, on_text: OnText | None = None,
                       max_tokens: int = 700) -> str: ...


class OpenAIChatModel:
    """Chat completions through `openai.AsyncOpenAI`."""

    def __init__(self, model: str, base_url: str = "", api_key: str = "", timeout: float = 60.0,
                 max_retries: int = 2):
        self.name = model
        self.client = openai.AsyncOpenAI(base_url=base_url or None, api_key=api_key or "not-needed",
                                         timeout=timeout, max_retries=max_retries)

    async def complete(self, messages: Sequence[dict], *, on_text: OnText | None = None,
                       max_tokens: int = 700) -> str:
        try:
            if on_text is None:
                response = await self.client.chat.completions.create(
                    model=self.name, messages=list(messages), max_tokens=max_tokens, temperature=0)
                return response.choices[0].message.content or ""
            return await self._stream(messages, on_text, max_tokens)
        except openai.APIStatusError as exc:
            raise ModelError(f"LLM endpoint answered HTTP {exc.status_code}") from exc
        except openai.APITimeoutError as exc:
            raise ModelError("LLM endpoint timed out") from exc
        except openai.APIConnectionError as exc:
            raise ModelError("LLM endpoint unreachable") from exc
        except (openai.OpenAIError, IndexError, AttributeError) as exc:
            raise ModelError(f"LLM endpoint gave an unusable answer ({type(exc).__name__})") from exc

    async def _stream(self, messages: Sequence[dict], on_text: OnText, max_tokens: int) -> str:
        parts: list[str] = []
        stream = await self.client.chat.completions.create(
            model=self.name, messages=list(messages), max_tokens=max_tokens, temperature=0, stream=True)
        async for chunk in stream:
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                parts.append(delta)
                await on_text(delta)
        return "".join(parts)

    async def close(self) -> None:
        await self.client.close()
