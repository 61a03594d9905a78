"""How many times a day an action may run: per conversation and per user, for each acting tool.

A profile sets them under `tool_options`:

    [profiles.support.tool_options]
    limits = {create_ticket = {per_conversation = 3, per_user_per_day = 5}}

Unset, each acting tool may run once per conversation and 10 times per user (per channel)
in a day: a model turned against the user (a planted instruction, a user's attack) gets at
most one action per conversation even from a user who says Yes to everything; a second one
in the same conversation ends the turn with the limit notice and a person offered. A profile
that needs more (two tickets in one chat, several comments) raises `per_conversation`.
Counts use `Memory.tally` (a fixed window shared by every worker; in-process when a context
brings none). A proposal is checked without counting (`reached`), so the user is told at
once instead of being asked; the count itself happens when the user says Yes (`take`),
atomically: of two Yes on two workers racing for the last slot, one runs. A Yes refused by
the user's daily limit still used one of the conversation's (rare: the proposal was checked).
Read-only tools (order and ticket lookups) are counted too, with higher defaults (20 per
conversation, 100 per user a day, `LOOKUP_DEFAULTS`): a model looping on lookups (or
told to by a planted text) ends with the limit notice instead of hammering Shopify.
"""
from __future__ import annotations

from typing import Any, Mapping

from bot.memory import InMemoryMemory
from bot.tools import ToolContext

DAY = 86400.0
DEFAULTS = {"per_conversation": 1, "per_user_per_day": 10}
LOOKUP_DEFAULTS = {"per_conversation": 20, "per_user_per_day": 100}


def allowed(options: Mapping[str, Any], tool: str, acting: bool = True) -> dict[str, int]:
    """The tool's limits: the profile's, else the defaults (higher for read-only lookups)."""
    own = (options.get("limits") or {}).get(tool) or {}
    return {name: int(own.get(name, default)) for name, default in (DEFAULTS if acting else LOOKUP_DEFAULTS).items()}


class Limits:
    """Counts actions per conversation and per user (see the module docstring)."""

    def __init__(self) -> None:
        self._local = InMemoryMemory()  # when a context brings no shared tally

    async def reached(self, ctx: ToolContext, tool: str) -> str:
        """Which limit a new action would pass ("per_conversation", "per_user_per_day"), or ""."""
        return await self._count(ctx, tool, 0)

    async def take(self, ctx: ToolContext, tool: str, acting: bool = True) -> str:
        """Count one call; the limit it passed (then it must not run), or ""."""
        return await self._count(ctx, tool, 1, acting)

    async def _count(self, ctx: ToolContext, tool: str, hits: int, acting: bool = True) -> str:
        tally = ctx.tally or self._local.tally
        limits = allowed(ctx.options, tool, acting)
        keys = {"per_conversation": f"action:{tool}:conversation:{ctx.conversation}",
                "per_user_per_day": f"action:{tool}:user:{ctx.channel}:{ctx.user.id}"}
        for name, key in keys.items():
            count = await tally(key, DAY, hits)
            if count > limits[name] or (not hits and count >= limits[name]):
                return name
        return ""
