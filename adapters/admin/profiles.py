"""The console's Profiles and channels page (admins, read-only): the profiles file the
process loaded, each profile with what it may read (its knowledge sources, internal
documents) and do (tools, handoffs and where they go, models), its limits and personal
data masking, and the per-channel settings. Changing them stays a TOML edit (the file is
named on the page, see docs/configuration.md); nothing on this page writes.
"""
from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response

from adapters.admin.html import h, join, table, tag
from adapters.admin.auth import Visit
from bot.profiles import Profile

FALLBACK = "admin:inbox"  # where handoffs of a profile without agents go once an operator exists


def _facts(pairs: list[tuple[str, object]]) -> h:
    return tag("dl", join(join([tag("dt", name), tag("dd", value)]) for name, value in pairs), class_="facts")


def _listed(values: Any, none: str) -> str:
    return ", ".join(str(v) for v in values) if values else none


class ProfilesPage:
    """The read-only view of the runtime's profiles."""

    def __init__(self, runtime: Any, fallback: Any):
        self.runtime = runtime
        self.fallback = fallback  # () -> the handoffs' fallback desk now ("" = none)

    async def page(self, visit: Visit) -> Response:
        profiles = self.runtime.profiles
        known = {info.name for info in await asyncio.to_thread(self.runtime.index.sources)}
        sections = [self._profile(p, p.key == profiles.default, known) for p in profiles.by_key.values()]
        channels = [(key, c.profile or f"{profiles.default} (default)", c.respond, _yes(c.follow_threads),
                     _yes(c.private_answers), _yes(c.agents), _yes(c.answer_bots))
                    for key, c in sorted(profiles.channels.items())]
        body = join([
            tag("p", join(["Read from ", tag("code", str(self.runtime.settings.profiles_path)),
                           ". Edit that file to change them (docs/configuration.md); this page only shows them."])),
            *sections,
            tag("h2", "Channels"),
            table(("Channel", "Profile", "Answers", "Follows threads", "Private answers", "Agents work here",
                   "Answers bots"), channels, "No channel has settings of its own: every channel uses the "
                                              "default profile and answers when mentioned.")])
        return visit.page("Profiles and channels", body, current="profiles")

    def _profile(self, profile: Profile, default: bool, known: set[str]) -> h:
        sources = ("every source in the index" if profile.sources is None else
                   _listed([s if s in known else f"{s} (not in the index)" for s in profile.sources], "none"))
        handoff = profile.handoff
        agents = handoff.agents or (f"{self.fallback()} (the console's inbox)" if self.fallback() == FALLBACK
                                    else "nowhere: the customer is offered the contact below")
        models = (f"cheap {profile.models.cheap.model}, strong {profile.models.strong.model}" if profile.models
                  else "the default (OPENAI_MODEL when an LLM is configured, else extractive answers)")
        reads = _facts([
            ("Knowledge sources", sources),
            ("Internal documents", "in private conversations" if profile.internal else "never"),
            ("Answers when confidence ≥", f"{profile.min_confidence:g}"),
            ("Language", profile.language)])
        does = _facts([
            ("Tools", _listed(profile.tools, "none")),
            ("Tool options", _listed([f"{k} = {v}" for k, v in profile.tool_options.items()], "none")),
            ("Hands conversations to", agents),
            ("Business hours", f"{handoff.hours} ({handoff.timezone})" if handoff.hours else "always"),
            ("Unclaimed after", f"{handoff.sla_minutes:g} min" if handoff.sla_minutes else "no limit"),
            ("Straight to a person", _listed(handoff.human_topics, "no topic")),
            ("AI answers only", _listed(handoff.ai_topics, "every topic") if handoff.ai_topics is not None
             else "every topic"),
            ("Assumed resolved after", f"{handoff.assume_resolved_hours:g} h"),
            ("Automations", _listed([a.on for a in handoff.automations], "none")),
            ("Models", models),
            ("Turn deadline", f"{profile.turn_deadline:g} s"),
            ("Links may open", _listed(profile.allowed_domains, "cited sources only")),
            ("Personal data masked", _listed(sorted(profile.pii.types), "nothing") if profile.pii.enabled else "off"),
            ("Agents see", _listed(sorted(profile.pii.agents), "placeholders only")),
            ("Contact", _listed([v for v in profile.contact.values()], "none"))])
        title = join([profile.name, tag("span", f" · {profile.key}{' · default' if default else ''}",
                                        class_="count")])
        return tag("section", join([tag("h2", title), tag("p", profile.persona, class_="hint"),
                                    tag("h3", "May read"), reads, tag("h3", "May do"), does]),
                   class_="gap profile", aria_label=profile.key)


def _yes(value: bool) -> str:
    return "yes" if value else "no"
