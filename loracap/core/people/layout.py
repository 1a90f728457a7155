"""The people of one image as a person edits them in the window (issue 13, "In the window"):
their boxes in caption order, each with the text of its caption line, and the scene.

A :class:`PeopleLayout` is read from what the project stores (the latest detection, the paid
descriptions) and from the image's current caption, whose lines win: a line a person edited
(``sksA: …``) stays that person's text when boxes move, are deleted, drawn or reordered. Each
edit returns a new layout; :meth:`PeopleLayout.caption` rebuilds the caption body with the
aliases the new order gives (:func:`~loracap.core.people.assign_aliases`), so moving a person
to the front makes them ``sksA`` and their line moves with them.

Nothing a person wrote is dropped: caption lines that belong to no person and are not the
scene (:attr:`PeopleLayout.extra`) are kept after the people's lines. Plain Python; no Qt, no
project file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from loracap.core.errors import InputError
from loracap.core.people.aliases import AliasMode, assign_aliases
from loracap.core.people.captions import (
    SCENE_LABEL,
    SCENE_TAG,
    PersonEntry,
    assemble_caption,
    assemble_tags_caption,
)
from loracap.core.people.detection import Gender, InvalidBoxError, PersonBox, normalise_gender

Box = tuple[int, int, int, int]

#: The smallest box a person may draw or drag to, in pixels of the oriented image: a smaller
#: one is a slip of the mouse, and a crop that small says nothing about a person.
MIN_BOX_SIDE = 8


@dataclass(frozen=True)
class LayoutPerson:
    """One person of a :class:`PeopleLayout`: ``box`` ``(left, top, right, bottom)`` in pixels
    of the oriented image (right and bottom exclusive), ``gender`` (for a default alias such as
    ``unidentified woman``), the caption line's ``text`` (natural mode; ``""`` = not described
    yet) or its ``tags`` (LoRA-tags mode)."""

    box: Box
    gender: Gender = "unknown"
    text: str = ""
    tags: tuple[str, ...] = ()

    @property
    def described(self) -> bool:
        """Whether the person has a text (natural mode) or tags (LoRA-tags mode)."""
        return bool(self.text.strip() or self.tags)


@dataclass(frozen=True)
class PeopleLayout:
    """The people of an image in caption order, the scene, and how their caption is written.

    ``mode`` ``natural`` (a line per person, then ``Scene: …``) or ``tags`` (one line:
    ``person1, tag, …, scene, tag``, joined with ``separator``); ``custom`` is the project's
    custom aliases (first person first). ``extra`` holds caption text that belongs to no
    person: lines (natural) or leading tags (tags mode), kept as they are.
    """

    people: tuple[LayoutPerson, ...]
    scene: str = ""
    scene_tags: tuple[str, ...] = ()
    mode: AliasMode = "natural"
    custom: tuple[str, ...] = ()
    separator: str = ", "
    extra: tuple[str, ...] = field(default=())

    # ------------------------------------------------------------------ reading

    def aliases(self) -> list[str]:
        """The alias of each person, in order (:func:`~loracap.core.people.assign_aliases`
        with the project's custom aliases); custom aliases that are not valid are ignored."""
        boxes = [PersonBox(*person.box, gender=person.gender) for person in self.people]
        try:
            return assign_aliases(boxes, custom=self.custom, mode=self.mode)
        except InputError:
            return assign_aliases(boxes, mode=self.mode)

    def caption(self) -> str | None:
        """The caption body the layout gives: natural mode ``alias: text`` for each described
        person, the kept extra lines, then ``Scene: …`` (when it has at least 3 words, as the
        captioning job writes it); tags mode the extra tags, then each person's alias and
        tags, then ``scene`` and the scene's tags. With no described person, natural mode
        gives the scene's text alone (a caption of the place), and None when there is not even
        that: the caller keeps the caption as it is."""
        aliases = self.aliases()
        if self.mode == "tags":
            body = assemble_tags_caption(
                [(alias, person.tags) for alias, person in zip(aliases, self.people,
                                                             strict=True)],
                self.scene_tags, self.separator)
            extra = self.separator.join(self.extra)
            joined = self.separator.join(part for part in (extra, body) if part)
            return joined or None
        entries = [PersonEntry(alias, person.text)
                   for alias, person in zip(aliases, self.people, strict=True)
                   if person.text.strip()]
        if not entries:
            lines = [*self.extra, *([" ".join(self.scene.split())] if self.scene.strip()
                                    else [])]
            return "\n".join(lines) or None
        body = assemble_caption(entries, self.scene)
        if not self.extra:
            return body
        lines = body.split("\n")
        count = len(entries)
        return "\n".join([*lines[:count], *self.extra, *lines[count:]])

    def state(self) -> list[list[object]]:
        """The boxes and genders in order, as JSON values (``[[left, top, right, bottom],
        gender]`` each): what an undo step stores of the people."""
        return [[list(person.box), person.gender] for person in self.people]

    # ------------------------------------------------------------------ edits

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.people):
            raise InputError(f"There is no person {index + 1} in this image "
                             f"({len(self.people)} found).")

    def with_box(self, index: int, box: Sequence[int], size: tuple[int, int]) -> PeopleLayout:
        """Person ``index`` with a new ``box`` (clamped to the image of ``size``
        ``(width, height)``); its text stays (describe the person again for a text of the new
        box). Raises :class:`InputError` for an unknown person or a box smaller than
        :data:`MIN_BOX_SIDE`."""
        self._check_index(index)
        clamped = clamp_box(box, size)
        people = list(self.people)
        people[index] = replace(people[index], box=clamped)
        return replace(self, people=tuple(people))

    def without(self, index: int) -> PeopleLayout:
        """The layout without person ``index``: the people after it move up (and take the
        aliases of their new positions). Raises :class:`InputError` for an unknown person."""
        self._check_index(index)
        return replace(self, people=self.people[:index] + self.people[index + 1:])

    def with_person(self, box: Sequence[int], size: tuple[int, int],
                    gender: str = "unknown") -> PeopleLayout:
        """The layout with a new, not yet described person (last in the order) in ``box``,
        clamped to the image of ``size``. Raises :class:`InputError` for a box smaller than
        :data:`MIN_BOX_SIDE`."""
        person = LayoutPerson(clamp_box(box, size), normalise_gender(gender))
        return replace(self, people=(*self.people, person))

    def moved(self, index: int, to: int) -> PeopleLayout:
        """Person ``index`` moved to position ``to`` (clamped to the list): it takes the alias
        of that position and its line moves with it. Raises :class:`InputError` for an
        unknown person."""
        self._check_index(index)
        people = list(self.people)
        person = people.pop(index)
        people.insert(max(0, min(to, len(people))), person)
        return replace(self, people=tuple(people))

    def with_gender(self, index: int, gender: str) -> PeopleLayout:
        """Person ``index`` with another ``gender`` (``woman``, ``man``, ``unknown``), which
        chooses a default alias such as ``unidentified woman``."""
        self._check_index(index)
        people = list(self.people)
        people[index] = replace(people[index], gender=normalise_gender(gender))
        return replace(self, people=tuple(people))

    def described(self, index: int, text: str = "", tags: Sequence[str] = ()) -> PeopleLayout:
        """Person ``index`` with a new ``text`` (natural mode) or ``tags`` (tags mode)."""
        self._check_index(index)
        people = list(self.people)
        people[index] = replace(people[index], text=" ".join(text.split()),
                                tags=tuple(tags))
        return replace(self, people=tuple(people))


def clamp_box(box: Sequence[int], size: tuple[int, int]) -> Box:
    """``box`` ``(left, top, right, bottom)`` with its corners in order and inside an image of
    ``size`` ``(width, height)``. Raises :class:`InputError` when what is left is smaller than
    :data:`MIN_BOX_SIDE` on a side."""
    if len(box) != 4:
        raise InputError("A box is four numbers: left, top, right, bottom.")
    width, height = size
    left, right = sorted((int(box[0]), int(box[2])))
    top, bottom = sorted((int(box[1]), int(box[3])))
    left, right = max(0, left), min(width, right)
    top, bottom = max(0, top), min(height, bottom)
    if right - left < MIN_BOX_SIDE or bottom - top < MIN_BOX_SIDE:
        raise InputError(f"A box must be at least {MIN_BOX_SIDE} by {MIN_BOX_SIDE} pixels "
                         "inside the image.")
    return (left, top, right, bottom)


def read_layout(boxes: Sequence[tuple[Box, str]], texts: Sequence[str | Sequence[str]],
                *, scene: str | Sequence[str] = "", body: str | None = None,
                mode: AliasMode = "natural", custom: Sequence[str] = (),
                separator: str = ", ") -> PeopleLayout:
    """The layout of an image whose people are ``boxes`` (``(box, gender)`` in caption order)
    with their stored ``texts`` (a description per person, natural mode, or a tag list per
    person, tags mode; ``""`` / ``()`` for none) and stored ``scene``, overridden by the
    image's current caption ``body`` where it has a person's line (the text a person sees and
    may have edited wins). Boxes that are empty are skipped. Raises :class:`InputError` for an
    unknown ``mode``."""
    if mode not in ("natural", "tags"):
        raise InputError(f'The mode is "natural" or "tags", not "{str(mode)[:40]}".')
    people: list[LayoutPerson] = []
    for (box, gender), text in zip(boxes, texts, strict=True):
        try:
            PersonBox(*box)
        except InvalidBoxError:
            continue
        if mode == "tags":
            tags = (text,) if isinstance(text, str) else tuple(text)
            people.append(LayoutPerson(box, normalise_gender(gender),
                                       tags=tuple(t for t in tags if t.strip())))
        else:
            people.append(LayoutPerson(box, normalise_gender(gender),
                                       text=text if isinstance(text, str) else ""))
    base = PeopleLayout(tuple(people), mode=mode, custom=tuple(custom), separator=separator)
    if mode == "tags":
        scene_tags = (scene,) if isinstance(scene, str) else tuple(scene)
        base = replace(base, scene_tags=tuple(t for t in scene_tags if t.strip()))
        return _tags_from_caption(base, body) if body is not None else base
    base = replace(base, scene=scene if isinstance(scene, str) else "")
    return _lines_from_caption(base, body) if body is not None else base


def _lines_from_caption(layout: PeopleLayout, body: str) -> PeopleLayout:
    """Natural mode: each person's ``alias: text`` line, taken in order (default aliases such
    as ``unidentified woman`` may repeat, so lines are matched to people one after another),
    the ``Scene:`` line, and every other line kept as extra."""
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    people = list(layout.people)
    extra: list[str] = []
    scene = layout.scene
    scene_prefix = f"{SCENE_LABEL}:".casefold()
    next_person = 0
    aliases = layout.aliases()
    for line in lines:
        if line.casefold().startswith(scene_prefix):
            scene = line[len(scene_prefix):].strip()
            continue
        matched = False
        for index in range(next_person, len(people)):
            prefix = f"{aliases[index]}:"
            if line.casefold().startswith(prefix.casefold()):
                people[index] = replace(people[index], text=line[len(prefix):].strip())
                next_person = index + 1
                matched = True
                break
        if not matched:
            extra.append(line)
    return replace(layout, people=tuple(people), scene=scene, extra=tuple(extra))


def _tags_from_caption(layout: PeopleLayout, body: str) -> PeopleLayout:
    """Tags mode: the tags after each alias (in order) and after ``scene``; tags before the
    first alias are kept as extra."""
    separator = layout.separator.strip() or ","
    tokens = [token.strip() for token in body.replace("\n", separator).split(separator)]
    tokens = [token for token in tokens if token]
    aliases = [alias.casefold() for alias in layout.aliases()]
    found: dict[int, list[str]] = {}
    scene: list[str] | None = None
    extra: list[str] = []
    current: list[str] = extra
    next_person = 0
    for token in tokens:
        folded = token.casefold()
        if next_person < len(aliases) and folded in aliases[next_person:]:
            index = aliases.index(folded, next_person)
            current = found.setdefault(index, [])
            next_person = index + 1
        elif folded == SCENE_TAG and scene is None:
            scene = []
            current = scene
        else:
            current.append(token)
    people = tuple(replace(person, tags=tuple(found[index])) if index in found else person
                   for index, person in enumerate(layout.people))
    return replace(layout, people=people, extra=tuple(extra),
                   scene_tags=tuple(scene) if scene is not None else layout.scene_tags)


__all__ = ["MIN_BOX_SIDE", "LayoutPerson", "PeopleLayout", "clamp_box", "read_layout"]
