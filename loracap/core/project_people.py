"""The parts of multi-person captions in a project (format 6): the detection of the people in
an image, each person's description and the scene, each stored the moment it is paid for.

A part of :class:`~loracap.core.project.Project` (see :mod:`loracap.core.project_base`). The
captioning job decides which stored parts it may reuse (the same image file, backend and model,
:meth:`ProjectPeople.reusable_parts`); the caption itself is stored as any caption once every
part of the image has succeeded.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, select

from loracap.core.errors import InputError
from loracap.core.project_base import ProjectBase, _chunks
from loracap.core.records import PART_KINDS, PersonPart
from loracap.core.schema import PersonPartRow, utcnow


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
        """The parts of the image's latest detection that a new run may reuse instead of paying
        again: made by the same ``backend`` and ``model`` from the image file as it is now
        (``file_size`` bytes, modified at ``mtime``). The detection first, then the people by
        position (the newest of each), then the scene; ``[]`` when there is no such detection.
        """
        parts = [p for p in self.person_parts(image_id)
                 if (p.backend, p.model, p.file_size) == (backend, model, file_size)
                 and abs(p.mtime - mtime) < 1e-6]
        detections = [p for p in parts if p.kind == "detection"]
        if not detections:
            return []
        latest = detections[-1]
        later = [p for p in parts if p.id > latest.id]
        people: dict[int, PersonPart] = {}
        scene: PersonPart | None = None
        for part in later:
            if part.kind == "person":
                people[part.position] = part
            elif part.kind == "scene":
                scene = part
        return [latest, *(people[k] for k in sorted(people)), *([scene] if scene else [])]

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


def detected_people(text: str) -> list[tuple[tuple[int, int, int, int], str]]:
    """The people of a stored detection part: ``(box, gender)`` pairs, in the detection's
    order; ``[]`` for text that is not such a list (the part is then worth nothing)."""
    try:
        loaded = json.loads(text)
    except ValueError:
        return []
    people: list[tuple[tuple[int, int, int, int], str]] = []
    for item in loaded if isinstance(loaded, list) else []:
        box = item.get("box") if isinstance(item, dict) else None
        if isinstance(box, list) and len(box) == 4 and all(type(v) is int for v in box):
            people.append(((box[0], box[1], box[2], box[3]), str(item.get("gender", "unknown"))))
    return people


def detection_text(people: list[tuple[tuple[int, int, int, int], str]]) -> str:
    """How a detection part stores its people: a JSON list of ``{"box", "gender"}``."""
    return json.dumps([{"box": list(box), "gender": gender} for box, gender in people])


def _part(row: PersonPartRow) -> PersonPart:
    values = json.loads(row.box) if row.box else None
    box = (int(values[0]), int(values[1]), int(values[2]), int(values[3])) \
        if isinstance(values, list) and len(values) == 4 else None
    return PersonPart(
        kind=row.kind, backend=row.backend, model=row.model, file_size=row.file_size,
        mtime=row.mtime, text=row.text, position=row.position, box=box,
        gender=row.gender, input_tokens=row.input_tokens, output_tokens=row.output_tokens,
        id=row.id)
