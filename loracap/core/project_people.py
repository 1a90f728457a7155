"""The parts of multi-person captions in a project (format 6): the detection of the people in
an image, each person's description and the scene, each stored the moment it is paid for.

A part of :class:`~loracap.core.project.Project` (see :mod:`loracap.core.project_base`). The
captioning job decides which stored parts it may reuse (the same image file, backend and model,
:meth:`ProjectPeople.reusable_parts`); the caption itself is stored as any caption once every
part of the image has succeeded.

A person edits the people of an image in the window (:meth:`ProjectPeople.people_layout`,
:meth:`ProjectPeople.edit_people`): each edit stores a new detection part holding the boxes in
the order the person chose (each with a ``rank``), rebuilds the caption from the layout, and is
one undo step; the next captioning run of the same file keeps those boxes and that order
whatever backend it uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loracap.core.errors import InputError

# Re-exported: the grid's rows read the people found with plain SQL (loracap.core.image_rows).
from loracap.core.image_rows import detected_people as detected_people
from loracap.core.people.layout import PeopleLayout, read_layout
from loracap.core.project_base import ProjectBase, _chunks
from loracap.core.prompts import Profile
from loracap.core.records import PART_KINDS, PersonPart, ProjectSettings
from loracap.core.schema import CaptionRow, PersonPartRow, utcnow

Box = tuple[int, int, int, int]


class ProjectPeople(ProjectBase):
    """The stored parts of multi-person captions."""

    def person_parts(self, image_id: int) -> list[PersonPart]:
        """Every part stored for the image, oldest first."""
        with self._read() as session:
            rows = session.scalars(select(PersonPartRow).where(PersonPartRow.image_id == image_id)
                                   .order_by(PersonPartRow.id)).all()
            return [_part(row) for row in rows]

    def reusable_parts(self, image_id: int, *, backend: str, model: str, file_size: int,
                       mtime: float) -> list[PersonPart]:
        """The parts a new run of the image may reuse instead of paying again, all made from
        the image file as it is now (``file_size`` bytes, modified at ``mtime``): the latest
        detection by the same ``backend`` and ``model``, or the latest a person edited (their
        boxes and order, :func:`detection_ordered`, whoever found the people first), when it
        is newer; then the newest description of each box by the same backend and model, in
        the detection's order; then the newest scene by them. ``[]`` when there is no such
        detection.
        """
        same_file = [p for p in self.person_parts(image_id)
                     if p.file_size == file_size and abs(p.mtime - mtime) < 1e-6]
        same_model = [p for p in same_file if (p.backend, p.model) == (backend, model)]
        detections = [p for p in same_file if p.kind == "detection" and (
            (p.backend, p.model) == (backend, model) or detection_ordered(p.text))]
        if not detections:
            return []
        latest = detections[-1]
        described: dict[Box, PersonPart] = {}
        scene: PersonPart | None = None
        for part in same_model:
            if part.kind == "person" and part.box is not None and part.text:
                described[part.box] = part
            elif part.kind == "scene":
                scene = part
        people = [described[box] for box, _gender in detected_people(latest.text)
                  if box in described]
        return [latest, *people, *([scene] if scene else [])]

    def store_person_part(self, image_id: int, part: PersonPart) -> PersonPart:
        """Store a paid part at once (it is kept even when the image fails later); returns it
        with its id. Raises :class:`InputError` for an unknown kind or image."""
        if part.kind not in PART_KINDS:
            raise InputError(f"Unknown kind of caption part {part.kind!r}.")
        with self._write() as session:
            row = PersonPartRow(
                image_id=image_id, kind=part.kind, position=part.position,
                box=json.dumps(list(part.box)) if part.box else "", gender=part.gender,
                text=part.text, backend=part.backend, model=part.model,
                file_size=part.file_size, mtime=part.mtime, input_tokens=part.input_tokens,
                output_tokens=part.output_tokens, created_at=utcnow())
            self._require_image(session, image_id)
            session.add(row)
            session.flush()
            return _part(row)

    def clear_person_parts(self, image_id: int) -> int:
        """Forget every part of the image (the next run detects the people again); returns how
        many were removed."""
        with self._write() as session:
            result = session.execute(
                delete(PersonPartRow).where(PersonPartRow.image_id == image_id))
            return int(getattr(result, "rowcount", 0) or 0)

    def people_found(self, image_ids: list[int] | None = None) -> dict[int, int]:
        """The number of people the latest detection of each image found, by image id (images
        never detected are left out)."""
        found: dict[int, int] = {}
        with self._read() as session:
            query = select(PersonPartRow).where(PersonPartRow.kind == "detection")
            chunks = [query] if image_ids is None else [
                query.where(PersonPartRow.image_id.in_(chunk)) for chunk in _chunks(image_ids)]
            for chunk_query in chunks:
                for row in session.scalars(chunk_query.order_by(PersonPartRow.id)):
                    found[row.image_id] = len(detected_people(row.text))
        return found


    # ------------------------------------------------------------------ a person's edits

    def people_layout(self, image_id: int) -> PeopleLayout | None:
        """The people of the image as the window edits them (:class:`~loracap.core.people.
        layout.PeopleLayout`): the boxes of its latest detection in caption order (the order a
        person chose, else the project's), each with its caption line's text (else the stored
        description of the same box), and the scene. None when the project is not
        multi-person or the image was never detected."""
        settings = self.settings
        mode = _mode(settings)
        if mode is None:
            return None
        with self._read() as session:
            layout = self._layout(session, image_id, settings, mode)
        return layout

    def _layout(self, session: Session, image_id: int, settings: ProjectSettings,
                mode: str) -> PeopleLayout | None:
        rows = session.scalars(select(PersonPartRow).where(PersonPartRow.image_id == image_id)
                               .order_by(PersonPartRow.id)).all()
        parts = [_part(row) for row in rows]
        detections = [p for p in parts if p.kind == "detection"]
        if not detections:
            return None
        people = _in_order(detections[-1].text, settings.people_order)
        texts: dict[Box, str] = {}
        scene = ""
        for part in parts:
            if part.kind == "person" and part.box is not None and part.text:
                texts[part.box] = part.text
            elif part.kind == "scene":
                scene = part.text
        caption = session.get(CaptionRow, image_id)
        tags = mode == "tags"
        return read_layout(
            people, [() if tags else texts.get(box, "") for box, _gender in people],
            scene=() if tags else scene, body=caption.body if caption is not None else None,
            mode="tags" if tags else "natural", custom=settings.aliases,
            separator=settings.tag_separator)

    def edit_people(self, image_id: int, layout: PeopleLayout, label: str) -> bool:
        """Make ``layout`` (an edit of :meth:`people_layout`) the image's people and rebuild
        its caption from it (:meth:`~loracap.core.people.layout.PeopleLayout.caption`;
        provenance ``edited``, or ``manual`` for a caption a person wrote), as ONE undo step
        labelled ``label``. The boxes are stored with the layout's order, which later runs
        keep. Returns False when nothing changed. Raises :class:`InputError` for an image that
        was never detected, is not valid, or for a project that is not multi-person."""
        if _mode(self.settings) is None:
            raise InputError("Only a multi-person project has people to edit.")
        with self._write() as session, session.no_autoflush:
            image = self._require_image(session, image_id)
            if not image.valid:
                raise InputError(f"{image.path} is not a valid image; its people cannot be "
                                 "changed.")
            before = self._people_state(session, image_id)
            if before is None:
                raise InputError(f"No people were found in {image.path} yet; caption it "
                                 "first.")
            after = layout.state()
            if after != before:
                self._put_people_state(session, image_id, after)
            body = layout.caption()
            current = session.get(CaptionRow, image_id)
            entry = self._edit_row(session, image_id, current, body) \
                if body is not None else None
            if entry is None and after == before:
                return False
            entry = entry or {"image": image_id, "before": {}, "after": {}}
            if after != before:
                entry["before"]["people"] = before
                entry["after"]["people"] = after
            self._record_step(session, label, [entry])
        return True

    def _people_state(self, session: Session, image_id: int) -> list[Any] | None:
        """The image's people as an undo step stores them (:meth:`~loracap.core.people.
        layout.PeopleLayout.state`), or None when it was never detected."""
        row = session.scalars(
            select(PersonPartRow).where(PersonPartRow.image_id == image_id,
                                        PersonPartRow.kind == "detection")
            .order_by(PersonPartRow.id.desc()).limit(1)).first()
        if row is None:
            return None
        return [[list(box), gender]
                for box, gender in _in_order(row.text, self.settings.people_order)]

    def _put_people_state(self, session: Session, image_id: int, state: list[Any]) -> None:
        """Store ``state`` (:meth:`_people_state`) as the image's latest detection, in its
        order: a copy of the latest detection's source (backend, model, file) with the new
        boxes, no tokens (nothing was paid)."""
        latest = session.scalars(
            select(PersonPartRow).where(PersonPartRow.image_id == image_id,
                                        PersonPartRow.kind == "detection")
            .order_by(PersonPartRow.id.desc()).limit(1)).first()
        if latest is None:
            raise InputError(f"Image {image_id} has no detected people to change.")
        people = [((int(box[0]), int(box[1]), int(box[2]), int(box[3])), str(gender))
                  for box, gender in state]
        session.add(PersonPartRow(
            image_id=image_id, kind="detection", position=0, box="", gender="unknown",
            text=detection_text(people, ordered=True), backend=latest.backend,
            model=latest.model, file_size=latest.file_size, mtime=latest.mtime,
            input_tokens=0, output_tokens=0, created_at=utcnow()))
        session.flush()


def _mode(settings: ProjectSettings) -> str | None:
    """``natural`` or ``tags`` for a multi-person project, else None."""
    if settings.profile == Profile.MULTI_PERSON.value:
        return "natural"
    if settings.profile == Profile.MULTI_PERSON_TAGS.value:
        return "tags"
    return None


def _in_order(text: str, order: str) -> list[tuple[Box, str]]:
    """The people of a detection part in caption order: the order a person chose
    (:func:`detection_ordered`), else the project's ``order`` (``left`` or ``size``)."""
    people = detected_people(text)
    if detection_ordered(text):
        return people
    from loracap.core.people.detection import InvalidBoxError, PersonBox, order_people

    boxes: list[PersonBox] = []
    for box, gender in people:
        try:
            boxes.append(PersonBox(*box, gender=gender))  # type: ignore[arg-type]
        except InvalidBoxError:
            continue
    try:
        ordered = order_people(boxes, by=order)  # type: ignore[arg-type]
    except InputError:
        ordered = order_people(boxes)
    return [(box.as_tuple(), box.gender) for box in ordered]


def detection_ordered(text: str) -> bool:
    """Whether a stored detection holds the order a person chose (every person has a
    ``rank``, :func:`detection_text` with ``ordered=True``): the caption order, which later
    runs keep instead of ordering the people again."""
    try:
        loaded = json.loads(text)
    except ValueError:
        return False
    return isinstance(loaded, list) and bool(loaded) and all(
        isinstance(item, dict) and type(item.get("rank")) is int for item in loaded)


def detection_text(people: Sequence[tuple[tuple[int, int, int, int], str]], *,
                   ordered: bool = False) -> str:
    """How a detection part stores its people: a JSON list of ``{"box", "gender"}``; with
    ``ordered`` each also has its ``rank`` in the list, the caption order a person chose (an
    older LoRACap reading the file ignores it and orders the people itself)."""
    return json.dumps([{"box": list(box), "gender": gender, **({"rank": rank} if ordered
                                                                 else {})}
                       for rank, (box, gender) in enumerate(people)])


def _part(row: PersonPartRow) -> PersonPart:
    values = json.loads(row.box) if row.box else None
    box = (int(values[0]), int(values[1]), int(values[2]), int(values[3])) \
        if isinstance(values, list) and len(values) == 4 else None
    return PersonPart(
        kind=row.kind, backend=row.backend, model=row.model, file_size=row.file_size,
        mtime=row.mtime, text=row.text, position=row.position, box=box,
        gender=row.gender, input_tokens=row.input_tokens, output_tokens=row.output_tokens,
        id=row.id)
