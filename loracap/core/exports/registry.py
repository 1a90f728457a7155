"""Every export format, by name, in the order the Export dialog lists them.

A new format is a module with a :class:`~loracap.core.exports.base.TrainerFormat` subclass and
one line here.
"""

from __future__ import annotations

from loracap.core.errors import InputError
from loracap.core.exports.ai_toolkit import AI_TOOLKIT
from loracap.core.exports.base import ExportFormat, TrainerFormat
from loracap.core.exports.fal import FAL
from loracap.core.exports.folder import FOLDER
from loracap.core.exports.hf import HF
from loracap.core.exports.kohya import KOHYA
from loracap.core.exports.metadata import METADATA
from loracap.core.exports.replicate import REPLICATE

FORMATS: dict[ExportFormat, TrainerFormat] = {
    fmt.name: fmt for fmt in (REPLICATE, AI_TOOLKIT, KOHYA, HF, FAL, FOLDER, METADATA)
}


def get_format(name: str | ExportFormat) -> TrainerFormat:
    """The format called ``name``; raises :class:`InputError` for an unknown one."""
    try:
        return FORMATS[ExportFormat(name)]
    except (ValueError, KeyError):
        known = ", ".join(fmt.value for fmt in FORMATS)
        raise InputError(f"Unknown export format {name!r}; choose one of {known}.") from None
