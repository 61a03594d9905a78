"""The tools Switchboard ships, built from settings: the one place that knows them all.

Jira's tools exist when JIRA_URL is set, Shopify's when SHOPIFY_STORE_URL is. A profile
lists the tools it may use (`tools = [...]` in the profiles file); a name that is not a
tool at all stops the process at start (`ConfigError`), while a known tool whose service
isn't configured is reported by `problems` (`switchboard serve` logs it, /healthz shows it).
"""
from __future__ import annotations

from bot.errors import ConfigError
from bot.profiles import Profiles
from bot.settings import Settings
from bot.tools import Toolbox

SERVICES = {"create_ticket": "Jira (JIRA_URL)", "add_comment": "Jira (JIRA_URL)",
            "ticket_status": "Jira (JIRA_URL)", "order_status": "Shopify (SHOPIFY_STORE_URL)"}


def build_toolbox(settings: Settings) -> Toolbox:
    """The tools whose services are configured."""
    toolbox = Toolbox()
    if settings.jira_url:
        from bot.tools.jira import JiraTools  # imported only when used: the client is heavy
        toolbox.register(JiraTools(url=settings.jira_url, project=settings.jira_project, email=settings.jira_email,
                                   token=settings.jira_token, cloud=settings.jira_cloud))
    if settings.shopify_store_url:
        from bot.tools.shopify import ShopifyTools
        toolbox.register(ShopifyTools(store_url=settings.shopify_store_url, token=settings.shopify_token))
    return toolbox


def check_profiles(profiles: Profiles) -> None:
    """Fail fast on a profile listing a tool that doesn't exist (a typo)."""
    for profile in profiles.by_key.values():
        unknown = [name for name in profile.tools if name not in SERVICES]
        if unknown:
            raise ConfigError(f"profile '{profile.key}' lists unknown tool(s) {', '.join(unknown)}: "
                              f"the tools are {', '.join(SERVICES)}")


def problems(profiles: Profiles, toolbox: Toolbox, uses_llm: bool) -> list[str]:
    """What keeps a profile's tools from working, in words an operator can act on."""
    found = []
    for profile in profiles.by_key.values():
        missing = [n for n in profile.tools if n not in toolbox]
        if missing:
            services = sorted({SERVICES[n] for n in missing})
            found.append(f"profile {profile.key}: tool(s) {', '.join(missing)} need {', '.join(services)}")
        elif profile.tools and not uses_llm:
            found.append(f"profile {profile.key}: tools need an LLM endpoint (OPENAI_BASE_URL or OPENAI_API_KEY)")
    return found
