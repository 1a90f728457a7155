"""The alias each person of a multi-person caption is written under (``sksA: ...``).

Rules (issue 13, "Multi-person captions"): in natural-language mode the first two people are
``sksA`` and ``sksB`` (rare tokens, as DreamBooth's ``sks``, that a LoRA can bind to one
identity each) and the others ``unidentified woman``, ``unidentified man`` or ``unidentified
person`` from the gender the detection gave; in LoRA-tags mode the defaults are ``person1``,
``person2``, .... A project's custom aliases (real names, ``ohwx_anna``) take precedence, in
order, for the first people.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Iterator, Sequence
from typing import Literal

# Re-exported: the rules of one alias live in a module that imports nothing heavy (the checks
# of a project file need them; importing this package loads Pillow).
from loracap.core.alias_rules import MAX_ALIAS_LENGTH as MAX_ALIAS_LENGTH
from loracap.core.alias_rules import validate_aliases as validate_aliases
from loracap.core.errors import InputError
from loracap.core.people.detection import PersonBox

AliasMode = Literal["natural", "tags"]
"""``natural``: ``alias: description`` lines; ``tags``: ``person1, tag, tag, ...``."""

#: How many people get a ``sks`` alias in natural mode; the rest are "unidentified".
NAMED_DEFAULTS = 2


def parse_aliases(text: str) -> tuple[str, ...]:
    """The aliases of the command line's ``--aliases "anna, ben"``: split at commas, then
    :func:`validate_aliases`. ``()`` for a blank text; raises :class:`InputError` for an empty
    alias (``"anna,,ben"``, a trailing comma) and the other broken rules."""
    if not text.strip():
        return ()
    return validate_aliases(text.split(","))


def _default_names(mode: AliasMode, start: int) -> Iterator[str]:
    """The default aliases from position ``start`` (0-based) on: ``person<start+1>``, ... or
    ``sksA``.. ``sksZ``, ``sksAA``, ``sksAB``, ... (reached only past custom aliases)."""
    for index in itertools.count(start):
        if mode == "tags":
            yield f"person{index + 1}"
        elif index < 26:
            yield "sks" + string.ascii_uppercase[index]
        else:
            first, second = divmod(index - 26, 26)
            yield "sks" + string.ascii_uppercase[first % 26] + string.ascii_uppercase[second]


def assign_aliases(people: Sequence[PersonBox], *, custom: Sequence[str] = (),
                   mode: AliasMode = "natural") -> list[str]:
    """One alias per person of ``people`` (already in caption order: :func:`order_people`).

    The first ``len(custom)`` people get the custom aliases in order (validated with
    :func:`validate_aliases`; extra ones are unused). The others get defaults by position:
    natural mode ``sksA``, ``sksB`` for positions 1 and 2 (:data:`NAMED_DEFAULTS`), then
    ``unidentified woman`` / ``unidentified man`` / ``unidentified person`` from the box's
    gender (these may repeat); tags mode ``person1``, ``person2``, ... by position (so with one
    custom alias the second person is still ``sksB`` / ``person2``). A default that an earlier
    alias already uses (ignoring case: ``custom=("sksB",)``) moves on to the next one
    (``sksC``, ``person3``), so no two people share a ``sks`` or ``person`` alias.

    Raises :class:`InputError` for invalid custom aliases or an unknown ``mode``.
    """
    if mode not in ("natural", "tags"):
        raise InputError(f'The alias mode is "natural" or "tags", not "{str(mode)[:40]}".')
    chosen = list(validate_aliases(custom)[: len(people)])
    taken = {alias.casefold() for alias in chosen}
    for position in range(len(chosen), len(people)):
        if mode == "natural" and position >= NAMED_DEFAULTS:
            gender = people[position].gender
            chosen.append(f"unidentified {'person' if gender == 'unknown' else gender}")
            continue
        alias = next(name for name in _default_names(mode, position)
                     if name.casefold() not in taken)
        taken.add(alias.casefold())
        chosen.append(alias)
    return chosen
