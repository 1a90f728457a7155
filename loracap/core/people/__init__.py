"""Multi-person captions (issue 13): the pure core -- boxes, order, aliases, crops, text rules
and caption assembly. Plain Python and Pillow; no Qt, no network, no project file.

The flow of one image, for the runner to drive: send the EXIF-oriented image with
:data:`DETECTION_PROMPT` and :data:`DETECTION_SCHEMA`; :func:`parse_detection` the answer
into :class:`PersonBox` es; :func:`order_people`; :func:`assign_aliases`; for each person send
:func:`person_crop` with :func:`person_prompt` and :func:`clean_person_text` the answer; send
:func:`scene_image` with :func:`scene_prompt` and :func:`clean_scene_text` the answer; then
:func:`multi_person_caption` (None: no person, use the ordinary caption).

Modules: :mod:`.detection` (boxes, detection request, order), :mod:`.detector` (the optional
local ONNX person detector; numpy and onnxruntime load only when it runs), :mod:`.aliases`,
:mod:`.crops`, :mod:`.texts` (prompts and cleaning), :mod:`.captions` (assembly).
"""

from __future__ import annotations

from loracap.core.people.aliases import (
    MAX_ALIAS_LENGTH,
    AliasMode,
    assign_aliases,
    parse_aliases,
    validate_aliases,
)
from loracap.core.people.captions import (
    SCENE_LINE_MIN_WORDS,
    PersonEntry,
    assemble_caption,
    assemble_tags_caption,
    multi_person_caption,
)
from loracap.core.people.crops import (
    CONTEXT_PER_MILLE,
    DIM,
    context_pixels,
    crop_rect,
    person_crop,
    scene_image,
)
from loracap.core.people.detection import (
    DETECTION_PROMPT,
    DETECTION_SCHEMA,
    Gender,
    InvalidBoxError,
    OrderBy,
    PersonBox,
    box_from_gemini,
    normalise_gender,
    order_people,
    parse_detection,
)
from loracap.core.people.detector import PersonDetector
from loracap.core.people.texts import (
    PERSON_MAX_WORDS,
    PERSON_MIN_WORDS,
    SCENE_MAX_WORDS,
    SCENE_MIN_WORDS,
    CleanedText,
    clean_person_text,
    clean_scene_text,
    count_words,
    cut_to_words,
    person_prompt,
    scene_prompt,
)

__all__ = [
    "CONTEXT_PER_MILLE", "DETECTION_PROMPT", "DETECTION_SCHEMA", "DIM", "MAX_ALIAS_LENGTH",
    "PERSON_MAX_WORDS", "PERSON_MIN_WORDS", "SCENE_LINE_MIN_WORDS", "SCENE_MAX_WORDS",
    "SCENE_MIN_WORDS", "AliasMode", "CleanedText", "Gender", "InvalidBoxError", "OrderBy",
    "PersonBox", "PersonDetector", "PersonEntry", "assemble_caption", "assemble_tags_caption",
    "assign_aliases", "box_from_gemini", "clean_person_text", "clean_scene_text", "context_pixels",
    "count_words", "crop_rect", "cut_to_words", "multi_person_caption", "normalise_gender",
    "order_people", "parse_aliases", "parse_detection", "person_crop", "person_prompt",
    "scene_image", "scene_prompt", "validate_aliases",
]
