"""The console's overview figures (bot/overview.py) as Prometheus series on /metrics:
the same numbers as the Overview page and /admin/api/metrics, over the last `WINDOW`
seconds (24 hours) at each scrape, as gauges named `switchboard_overview_*`
(docs/admin.md#prometheus). Rates are shares from 0 to 1; a figure with nothing to say
(no rating, nobody claimed) is left out rather than reported as 0.
"""
from __future__ import annotations

from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from bot.overview import BINS, Figures

WINDOW = 86400  # seconds: the period each scrape reports
PERIOD = "over the last 24 hours"
COUNTS = (("conversations", "Conversations with a customer message"), ("turns", "Customer messages handled"),
          ("questions", "Questions the bot handled (not chatter, not relayed to a person)"),
          ("answered", "Questions answered"), ("declined", "Questions declined"), ("failed", "Turns that failed"),
          ("escalations", "Conversations handed to a person"),
          ("resolved_confirmed", "Answers confirmed by a thumbs up"),
          ("resolved_assumed", "Answers assumed resolved after the resolution window"),
          ("reopened", "Answers reopened by the customer coming back"),
          ("thumbs_up", "Thumbs up on answers"), ("thumbs_down", "Thumbs down on answers"),
          ("tokens_in", "LLM tokens read"), ("tokens_out", "LLM tokens written"))
RATES = ("bot_resolved", "escalation", "deflection", "decline", "failure", "thumbs_up")
BREAKDOWNS = (("turns_by_channel", "Customer messages by channel", "channel", "by_channel"),
              ("turns_by_profile", "Customer messages by profile", "profile", "by_profile"),
              ("turns_by_outcome", "Customer messages by outcome", "outcome", "outcomes"),
              ("escalations_by_reason", "Handoffs to a person by reason", "reason", "escalation_reasons"),
              ("ratings", "Handoff ratings (1 to 5) by value", "rating", "ratings"))


def overview_families(found: Figures) -> Iterator[Metric]:
    """The `switchboard_overview_*` gauges of one period's figures."""
    for name, text in COUNTS:
        yield GaugeMetricFamily(f"switchboard_overview_{name}", f"{text} {PERIOD}", value=getattr(found, name))
    yield GaugeMetricFamily("switchboard_overview_cost_dollars", f"Estimated LLM cost {PERIOD}", value=found.cost)
    rates = GaugeMetricFamily("switchboard_overview_rate", f"Shares from 0 to 1 {PERIOD}: resolved by the bot, "
                              "escalated, never needed a person (deflection), declined, failed, thumbs up",
                              labels=["rate"])
    for name in RATES:
        rates.add_metric([name], getattr(found, f"{name}_rate"))
    yield rates
    for name, text, label, attribute in BREAKDOWNS:
        family = GaugeMetricFamily(f"switchboard_overview_{name}", f"{text} {PERIOD}", labels=[label])
        for key, count in getattr(found, attribute).items():
            family.add_metric([key], count)
        yield family
    confidence = GaugeMetricFamily("switchboard_overview_confidence", f"Answers and declines by confidence, "
                                   f"lower bound of a bin of {1 / BINS:g} {PERIOD}", labels=["from"])
    for n, count in enumerate(found.confidence):
        confidence.add_metric([f"{n / BINS:.1f}"], count)
    yield confidence
    if found.csat is not None:
        yield GaugeMetricFamily("switchboard_overview_csat", f"Mean handoff rating (1 to 5) {PERIOD}",
                                value=found.csat)
    waits = GaugeMetricFamily("switchboard_overview_first_response_seconds",
                              f"Time from a handoff to an agent's claim {PERIOD}", labels=["quantile"])
    for quantile, value in (("0.5", found.first_response_p50), ("0.9", found.first_response_p90)):
        if value is not None:
            waits.add_metric([quantile], value)
    yield waits
