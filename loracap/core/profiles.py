"""Caption profiles and caption languages: the names stored in a project file, their labels
and the check of a language code, in a module that imports nothing heavy. The prompts and the
cleaning of answers are :mod:`loracap.core.prompts`, which re-exports everything here; the
checks of a project file (:mod:`loracap.core.project_integrity`) and ``loracap info`` need only
this.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from loracap.core.errors import InputError


class Profile(StrEnum):
    """What the photos show and what kind of caption to write; decides the prompt and the
    caption structure. The values are stored in project files (``"space"``, ``"person"``,
    ``"tags"``, ``"paragraph"``, ``"short"``, ``"multi-person"``, ``"multi-person-tags"``,
    ``"custom"``) and never change. ``multi-person`` captions each person under an alias and
    the scene (:mod:`loracap.core.captioning_people`); its own instructions are the short
    caption of an image in which no person is found. ``multi-person-tags`` is its LoRA-tags
    variant: the WD14 tagger tags each person's crop and the scene (``person1, tag, …, scene,
    tag``)."""

    SPACE = "space"
    PERSON = "person"
    TAGS = "tags"
    PARAGRAPH = "paragraph"
    SHORT = "short"
    MULTI_PERSON = "multi-person"
    MULTI_PERSON_TAGS = "multi-person-tags"
    CUSTOM = "custom"

    @property
    def label(self) -> str:
        """The name shown to the user, e.g. ``"Interior space"``."""
        return _PROFILE_LABELS[self]


_PROFILE_LABELS: dict[Profile, str] = {
    Profile.SPACE: "Interior space",
    Profile.PERSON: "Person",
    Profile.TAGS: "Booru tags",
    Profile.PARAGRAPH: "Natural-language paragraph",
    Profile.SHORT: "Short caption",
    Profile.MULTI_PERSON: "Multi-person",
    Profile.MULTI_PERSON_TAGS: "Multi-person (LoRA tags)",
    Profile.CUSTOM: "Custom prompt",
}


def profile_label(profile: Profile) -> str:
    """The user-facing label of ``profile`` (same as ``profile.label``)."""
    return profile.label


# --- caption languages ------------------------------------------------------------------------

#: The languages a caption can be written in: code -> (English name, native name), in the
#: order a language menu shows them. Codes are BCP 47 language tags (``zh-Hans``: Chinese in
#: simplified characters). English is the default and adds nothing to a prompt.
LANGUAGES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "en": ("English", "English"),
    "zh-Hans": ("Simplified Chinese", "\u7b80\u4f53\u4e2d\u6587"),
    "tr": ("Turkish", "T\u00fcrk\u00e7e"),
    "de": ("German", "Deutsch"),
    "nl": ("Dutch", "Nederlands"),
    "fr": ("French", "Fran\u00e7ais"),
    "es": ("Spanish", "Espa\u00f1ol"),
    "ja": ("Japanese", "\u65e5\u672c\u8a9e"),
    "it": ("Italian", "Italiano"),
    "pt": ("Portuguese", "Portugu\u00eas"),
    "ko": ("Korean", "\ud55c\uad6d\uc5b4"),
    "ru": ("Russian", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439"),
    "pl": ("Polish", "Polski"),
})

#: The default caption language.
DEFAULT_LANGUAGE = "en"


#: Other codes people write for a language of :data:`LANGUAGES` (casefolded): Chinese as
#: written in mainland China and Singapore is Simplified Chinese (BCP 47 ``zh-CN`` / ``zh-SG``);
#: a bare ``zh`` stays ambiguous (Traditional Chinese is written in Taiwan and Hong Kong).
_LANGUAGE_ALIASES: Mapping[str, str] = MappingProxyType({
    "zh-cn": "zh-hans", "zh-sg": "zh-hans", "zh-hans-cn": "zh-hans"})


def check_language(code: str) -> str:
    """The code of :data:`LANGUAGES` that ``code`` names, e.g. ``"zh-Hans"`` for ``"zh-Hans"``,
    ``" ZH_hans "``, ``"zh-hans"`` or ``"zh-CN"`` (surrounding spaces, case and ``_`` for
    ``-`` do not matter; :data:`_LANGUAGE_ALIASES`). Raises :class:`InputError` for any other
    code, listing the valid ones."""
    wanted = code.strip().replace("_", "-").casefold()
    wanted = _LANGUAGE_ALIASES.get(wanted, wanted)
    for known in LANGUAGES:
        if known.casefold() == wanted:
            return known
    choices = ", ".join(f"{known} ({english})" for known, (english, _) in LANGUAGES.items())
    shown = code.strip()[:40]
    raise InputError(f'"{shown}" is not a caption language LoRACap knows. Choose one of: '
                     f"{choices}.")


def language_name(code: str) -> str:
    """The English name of the language ``code`` (e.g. ``"Simplified Chinese"`` for
    ``"zh-Hans"``). Raises :class:`InputError` for an unknown code (:func:`check_language`)."""
    return LANGUAGES[check_language(code)][0]


def language_label(code: str) -> str:
    """The name to show in a language menu: the English name with the native one, e.g.
    ``"German (Deutsch)"``, just ``"English"`` for English. Raises :class:`InputError` for an
    unknown code."""
    english, native = LANGUAGES[check_language(code)]
    return english if english == native else f"{english} ({native})"


__all__ = [
    "DEFAULT_LANGUAGE", "LANGUAGES", "Profile", "check_language", "language_label",
    "language_name", "profile_label",
]
