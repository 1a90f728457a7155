"""The rules of the aliases a project's multi-person captions use for its people (``anna``,
``ohwx_anna``): what one alias may hold, checked where they are typed and where a project file
is opened. In a module that imports nothing heavy: :mod:`loracap.core.people`, which re-exports
these and assigns aliases to people, loads Pillow.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from loracap.core.errors import InputError

#: The longest custom alias, in characters: longer than any name or trigger-style token
#: (``ohwx_anna``), short enough to stay a small part of a caption line.
MAX_ALIAS_LENGTH = 40
#: Characters no alias may hold: a colon ends the alias of an ``alias: description`` line, a
#: comma separates tags and the aliases of ``--aliases`` (ASCII and the CJK full-width forms).
_FORBIDDEN = ":,\uff1a\uff0c\u3001"
_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x85\u2028\u2029]")


def validate_aliases(aliases: Sequence[str]) -> tuple[str, ...]:
    """``aliases`` checked and tidied: surrounding spaces removed, inner runs of spaces made
    one space. Raises :class:`InputError` naming the alias when one is empty, spans lines,
    holds a colon or comma (:data:`_FORBIDDEN`) or a control character, is longer than
    :data:`MAX_ALIAS_LENGTH` characters, or repeats another one (ignoring case)."""
    tidy: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(aliases, start=1):
        if _LINE_BREAKS.search(raw):
            raise InputError(f"Alias {number} spans more than one line; an alias is one line.")
        alias = " ".join(raw.split())
        shown = alias[:MAX_ALIAS_LENGTH]
        if not alias:
            raise InputError(f"Alias {number} is empty. Give each person a name or leave the "
                             "alias out.")
        bad = sorted({ch for ch in alias if ch in _FORBIDDEN or not ch.isprintable()})
        if bad:
            raise InputError(f'The alias "{shown}" holds {", ".join(map(repr, bad))}: an alias '
                             "may not hold a colon, a comma or a control character.")
        if len(alias) > MAX_ALIAS_LENGTH:
            raise InputError(f'The alias "{shown}…" is {len(alias)} characters long; at most '
                             f"{MAX_ALIAS_LENGTH} are allowed.")
        key = alias.casefold()
        if key in seen:
            raise InputError(f'The alias "{alias}" is given twice (aliases {seen[key]} and '
                             f"{number}); each person needs an alias of their own.")
        seen[key] = number
        tidy.append(alias)
    return tuple(tidy)


__all__ = ["MAX_ALIAS_LENGTH", "validate_aliases"]
