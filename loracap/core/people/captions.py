"""Assembling the caption body of a multi-person image from its parts.

Natural-language mode (issue 13)::

    sksA: A young woman with long brown hair in a blue dress, smiling warmly at the camera.
    sksB: A middle-aged man with short grey hair in a black suit, arms crossed, serious.
    Scene: Modern office with floor-to-ceiling windows and minimalist white furniture.

LoRA-tags mode: ``person1, tag, tag, person2, tag, ..., scene, tag, tag``. Exports keep the
lines where their format keeps lines and join them with ``"; "`` for one-line trainers (a
later step); this module only builds the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from loracap.core.people.aliases import AliasMode
from loracap.core.people.texts import count_words

#: A scene line is written only when its description has at least this many words: a
#: shorter one ("Office.") says too little to be worth a line (issue 13).
SCENE_LINE_MIN_WORDS = 3
#: The label of the scene: the ``Scene:`` line, and the ``scene`` tag before the scene's tags.
SCENE_LABEL = "Scene"
SCENE_TAG = "scene"


@dataclass(frozen=True)
class PersonEntry:
    """One person's part of a caption: ``alias`` (:func:`assign_aliases`), the cleaned
    one-line ``description`` (:func:`clean_person_text`; natural mode) and the chosen
    ``tags`` (LoRA-tags mode)."""

    alias: str
    description: str = ""
    tags: tuple[str, ...] = field(default=())


def _one_line(text: str) -> str:
    return " ".join(text.split())


def assemble_caption(entries: Sequence[PersonEntry], scene: str = "") -> str:
    """The multi-line body: ``alias: description`` per entry, in the given order, then
    ``Scene: <scene>`` when ``scene`` has at least :data:`SCENE_LINE_MIN_WORDS` words.
    Lines are joined with ``"\\n"``; whitespace inside a part is collapsed to one space.
    Raises ``ValueError`` when ``entries`` is empty (see :func:`multi_person_caption`) or an
    entry's alias or description is blank (a part that failed must fail the image, not leave
    a hole in its caption)."""
    if not entries:
        raise ValueError("A multi-person caption needs at least one person.")
    lines: list[str] = []
    for number, entry in enumerate(entries, start=1):
        alias, description = _one_line(entry.alias), _one_line(entry.description)
        if not alias or not description:
            raise ValueError(f"Person {number} has no alias or no description.")
        lines.append(f"{alias}: {description}")
    scene = _one_line(scene)
    if count_words(scene) >= SCENE_LINE_MIN_WORDS:
        lines.append(f"{SCENE_LABEL}: {scene}")
    return "\n".join(lines)


def assemble_tags_caption(person_tags: Sequence[tuple[str, Sequence[str]]],
                          scene_tags: Sequence[str], separator: str = ", ") -> str:
    """The one-line LoRA-tags body: each ``(alias, tags)`` of ``person_tags`` in order as the
    alias followed by its tags, then ``scene`` followed by ``scene_tags``, all joined with
    ``separator``: ``person1, long hair, smile, person2, beard, scene, indoors, window``.

    Tags are used as given (already chosen, e.g. by the WD14 tagger on each crop), stripped;
    blank ones are skipped. A person with no tags is just the alias; no scene tags means no
    ``scene`` either. ``""`` when there is nothing at all."""
    pieces: list[str] = []
    for alias, tags in person_tags:
        pieces.append(_one_line(alias))
        pieces.extend(_kept_tags(tags))
    scene = _kept_tags(scene_tags)
    if scene:
        pieces.append(SCENE_TAG)
        pieces.extend(scene)
    return separator.join(pieces)


def _kept_tags(tags: Sequence[str]) -> list[str]:
    return [_one_line(tag) for tag in tags if tag.strip()]


def multi_person_caption(entries: Sequence[PersonEntry], scene: str = "", *,
                         mode: AliasMode = "natural", scene_tags: Sequence[str] = (),
                         separator: str = ", ") -> str | None:
    """The caption body of a multi-person image, or None when no person was found.

    None means: use the project's ordinary single-subject caption for this image, and the
    grid shows "no person found" so the user can decide (issue 13). Otherwise natural mode
    gives :func:`assemble_caption` of ``entries`` and ``scene``; ``mode="tags"`` gives
    :func:`assemble_tags_caption` of each entry's alias and tags and ``scene_tags``. Raises
    ``ValueError`` as :func:`assemble_caption` does, and for an unknown ``mode``."""
    if mode not in ("natural", "tags"):
        raise ValueError(f'The mode is "natural" or "tags", not "{str(mode)[:40]}".')
    if not entries:
        return None
    if mode == "tags":
        return assemble_tags_caption([(entry.alias, entry.tags) for entry in entries],
                                     scene_tags, separator)
    return assemble_caption(entries, scene)
