"""What a project's captions cost so far, as the status bar says it.

The tokens are the services' own counts stored with every answer
(:meth:`loracap.core.project.Project.token_usage`); the prices are the user's price table
(:func:`loracap.core.pricing.load_prices`). A model without a price is said to be unknown,
never counted as free; a local tagger's answers cost no tokens and nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loracap.core.pricing import PriceTable, format_cost
from loracap.core.records import ModelUsage


@dataclass(frozen=True)
class UsageSummary:
    """The tokens of all answers, the dollars of those with a price (``cost``), and the
    ``backend model`` names whose price is unknown (their tokens are in the totals)."""

    input_tokens: int
    output_tokens: int
    cost: float
    unknown: tuple[str, ...]

    @property
    def tokens(self) -> int:
        """Input and output tokens together."""
        return self.input_tokens + self.output_tokens


def summarize_usage(usages: Sequence[ModelUsage], prices: PriceTable) -> UsageSummary:
    """Add up ``usages`` priced with ``prices`` (see the module docstring)."""
    cost = 0.0
    unknown: list[str] = []
    for usage in usages:
        if usage.input_tokens + usage.output_tokens == 0:
            continue
        dollars = prices.cost(usage.backend, usage.model, usage.input_tokens,
                              usage.output_tokens)
        if dollars is None:
            unknown.append(f"{usage.backend} {usage.model}".strip())
        else:
            cost += dollars
    return UsageSummary(sum(u.input_tokens for u in usages),
                        sum(u.output_tokens for u in usages), cost, tuple(unknown))


def usage_text(summary: UsageSummary) -> str:
    """``"Tokens: 12,345 (about $0.0123)"``, ``"Tokens: 900 (about $0.01 + unknown for openai
    qwen2.5vl:7b)"``, ``"Tokens: 900 (cost unknown: no price for openai qwen2.5vl:7b)"``, or
    ``""`` when no answer cost a token."""
    if summary.tokens == 0:
        return ""
    head = f"Tokens: {summary.tokens:,}"
    if not summary.unknown:
        return f"{head} (about {format_cost(summary.cost)})"
    names = ", ".join(summary.unknown)
    if summary.cost > 0:
        return f"{head} (about {format_cost(summary.cost)} + unknown for {names})"
    return f"{head} (cost unknown: no price for {names})"


def usage_tooltip(usages: Sequence[ModelUsage], prices: PriceTable) -> str:
    """One line per backend and model: answers, input and output tokens and the cost."""
    lines = []
    for usage in usages:
        dollars = prices.cost(usage.backend, usage.model, usage.input_tokens,
                              usage.output_tokens)
        if usage.input_tokens + usage.output_tokens == 0:
            dollars = 0.0
        lines.append(f"{usage.backend} {usage.model}: {usage.answers} answer(s), "
                     f"{usage.input_tokens:,} input + {usage.output_tokens:,} output tokens, "
                     f"about {format_cost(dollars)}")
    lines.append(f"Prices of {prices.as_of}; edit them in prices.json (loracap prices).")
    return "\n".join(lines)
