"""What captioning costs: a price table per backend and model, editable by the user.

Prices are US dollars per million tokens, input and output apart, as the providers list them
for standard (not batch) requests. The built-in table says when it was written and where the
prices come from (:data:`BUILTIN_PRICES`); prices change, so the user's own table
(``prices.json`` in the settings folder, :func:`user_prices_path`) overrides it entry by entry::

    {"as_of": "2026-11-30", "source": "my invoice",
     "prices": {"openai/gpt-4.1-mini": {"input": 0.4, "output": 1.6},
                "anthropic/*": {"input": 1.0, "output": 5.0}}}

Keys are ``backend/model``; ``backend/*`` is the price of any model of that backend without its
own entry. A backend that runs locally (``wd14``) costs nothing; a model found nowhere has no
price (its cost is shown as unknown, never as zero).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loracap.core.errors import InputError

log = logging.getLogger(__name__)

#: File name of the user's price table in the settings folder.
PRICES_FILE = "prices.json"


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens: ``input`` (prompt and image), ``output`` (the answer)."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The cost in dollars of that many tokens."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


@dataclass(frozen=True)
class PriceTable:
    """Prices by ``backend/model`` key, with the date (``as_of``) and ``source`` they are from."""

    as_of: str
    source: str
    prices: Mapping[str, Price]

    def price(self, backend: str, model: str) -> Price | None:
        """The price of ``model`` of ``backend``: its own entry, else the backend's ``*`` entry,
        else None (unknown)."""
        return self.prices.get(f"{backend}/{model}") or self.prices.get(f"{backend}/*")

    def cost(self, backend: str, model: str, input_tokens: int, output_tokens: int
             ) -> float | None:
        """Dollars for those tokens, or None when the model has no price."""
        price = self.price(backend, model)
        return None if price is None else price.cost(input_tokens, output_tokens)


#: The built-in prices: list prices of standard requests, per million tokens, as published on
#: the providers' pricing pages when this table was written (``as_of``). Gemini:
#: https://ai.google.dev/gemini-api/docs/pricing (paid tier; the free tier costs nothing but is
#: limited); OpenAI: https://openai.com/api/pricing; Anthropic:
#: https://docs.anthropic.com/en/docs/about-claude/pricing. ``gemini-flash-latest`` follows
#: Google's current Flash model and is priced as gemini-2.5-flash here.
BUILTIN_PRICES = PriceTable(
    as_of="2025-10",
    source="the providers' published list prices (Google AI for Developers, OpenAI, Anthropic)",
    prices={
        "gemini/gemini-flash-latest": Price(0.30, 2.50),
        "gemini/gemini-2.5-flash": Price(0.30, 2.50),
        "gemini/gemini-flash-lite-latest": Price(0.10, 0.40),
        "gemini/gemini-2.5-flash-lite": Price(0.10, 0.40),
        "gemini/gemini-2.5-pro": Price(1.25, 10.00),
        "openai/gpt-4.1": Price(2.00, 8.00),
        "openai/gpt-4.1-mini": Price(0.40, 1.60),
        "openai/gpt-4.1-nano": Price(0.10, 0.40),
        "openai/gpt-4o": Price(2.50, 10.00),
        "openai/gpt-4o-mini": Price(0.15, 0.60),
        "anthropic/claude-haiku-4-5": Price(1.00, 5.00),
        "anthropic/claude-sonnet-4-5": Price(3.00, 15.00),
        "anthropic/claude-opus-4-1": Price(15.00, 75.00),
        "wd14/*": Price(0.0, 0.0),
    },
)


def user_prices_path() -> Path:
    """Where the user's price table is read from (it need not exist)."""
    from loracap.core.userdirs import user_dirs

    return user_dirs().settings / PRICES_FILE


def parse_price_table(text: str) -> PriceTable:
    """A price table from the JSON text of ``prices.json`` (module docstring). Raises
    :class:`InputError` saying what is wrong: not JSON, no ``prices`` object, a price that is not
    a number of dollars of at least 0."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"The price table is not JSON ({exc}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict):
        raise InputError('The price table has no "prices" object.')
    prices: dict[str, Price] = {}
    for key, entry in data["prices"].items():
        if not isinstance(key, str) or "/" not in key:
            raise InputError(f'The price table\'s key "{key}" is not "backend/model".')
        if not isinstance(entry, dict):
            raise InputError(f'The price of "{key}" is not an object with input and output.')
        prices[key] = Price(_dollars(entry.get("input"), key), _dollars(entry.get("output"), key))
    return PriceTable(str(data.get("as_of", "")), str(data.get("source", "")), prices)


def _dollars(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or value < 0:
        raise InputError(f'The price of "{key}" needs "input" and "output" as dollars per '
                         "million tokens (numbers of at least 0).")
    return float(value)


def load_prices(path: Path | None = None) -> PriceTable:
    """The built-in table with the user's table at ``path`` (default :func:`user_prices_path`)
    laid over it; its date and source are the user's when it has entries. A missing file is no
    error; an unreadable or invalid one is logged and ignored (the built-in prices are used)."""
    path = user_prices_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return BUILTIN_PRICES
    except OSError as exc:
        log.warning("Cannot read the price table %s: %s", path, exc)
        return BUILTIN_PRICES
    try:
        user = parse_price_table(text)
    except InputError as exc:
        log.warning("Ignoring the price table %s: %s", path, exc)
        return BUILTIN_PRICES
    if not user.prices:
        return BUILTIN_PRICES
    return PriceTable(user.as_of or BUILTIN_PRICES.as_of, user.source or str(path),
                      {**BUILTIN_PRICES.prices, **user.prices})


def format_cost(dollars: float | None) -> str:
    """``"$0.0123"``, ``"$1.25"``, ``"$0"`` or ``"unknown"`` (no price)."""
    if dollars is None:
        return "unknown"
    if dollars == 0:
        return "$0"
    return f"${dollars:.4f}" if dollars < 1 else f"${dollars:,.2f}"
