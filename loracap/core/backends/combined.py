"""Combined captions: a local WD14 tagger looks at the image first and the vision model gets its
tags as hints ("tags an image tagger saw: …"), the way taggui users chain models.

Turned on per vision backend in the project (``backend_options[<backend>]``: ``tagger_hints``
true, ``tagger_model`` the WD14 model, default ``wd-eva02-large-tagger-v3``; the tagger's own
thresholds are the project's ``wd14`` options). :func:`loracap.core.backends.registry.
resolve_config` puts the tagger's configuration in ``BackendConfig.hints`` and
:func:`~loracap.core.backends.registry.create_captioner` wraps the vision captioner in a
:class:`HintedCaptioner`.

The caption's provenance is the vision model's (backend, model, the prompt actually sent with
its hint line, its tokens); the tagger costs no tokens. A tagger that finds no tag above its
thresholds gives no hint line; a tagger that fails stops the batch (its model is broken), as the
tagger alone would.

Requests that are not captions (:meth:`HintedCaptioner.ask`, multi-person captions) go to the
vision model alone, without hints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loracap.core.backends.base import (
    Answer,
    Captioner,
    CaptionResult,
    VisionAsker,
    prepare_decodes_whole,
)
from loracap.core.errors import CaptionError, ImageRejectedError
from loracap.core.prompts import Instructions


class HintedCaptioner:
    """``vision`` captions each image with the tags ``tagger`` found in it as hints. Safe to call
    from several threads at once when both are (the tagger batches concurrent calls)."""

    def __init__(self, vision: Captioner, tagger: Any) -> None:
        self.vision = vision
        self.tagger = tagger
        self.backend = vision.backend
        self.model = vision.model
        #: Both prepare the image, and both must succeed: one whole decode is enough.
        self.prepare_decodes_whole = (prepare_decodes_whole(vision)
                                      or prepare_decodes_whole(tagger))

    def load(self) -> None:
        """Load the tagger's model now (off the GUI thread), so a broken model is one clear
        error before the batch rather than one per image."""
        load = getattr(self.tagger, "load", None)
        if callable(load):
            load()

    def prepare(self, path: Path, max_side: int) -> tuple[Any, Any]:
        """``(what the vision model takes, what the tagger takes)`` of the image at ``path``;
        raises :class:`~loracap.core.errors.InputError` for an image neither can use."""
        return self.vision.prepare(path, max_side), self.tagger.prepare(path, max_side)

    def hints(self, tagger_input: Any) -> list[str]:
        """The tags the tagger sees in a prepared image, most confident first (none when no tag
        passes its thresholds)."""
        try:
            return [tag for tag, _score in self.tagger.tag(tagger_input)]
        except ImageRejectedError:
            return []

    def caption(self, image: tuple[Any, Any], instructions: Instructions, *, trigger: str,
                prefix: str) -> CaptionResult:
        """Tag the image, then caption it with the tags as hints
        (:meth:`~loracap.core.prompts.Instructions.with_tag_hints`)."""
        vision_input, tagger_input = image
        hinted = instructions.with_tag_hints(self.hints(tagger_input))
        return self.vision.caption(vision_input, hinted, trigger=trigger, prefix=prefix)

    def ask(self, jpeg: bytes, prompt: str, *, json_schema: dict[str, Any] | None = None
            ) -> Answer:
        """The vision captioner's :meth:`~loracap.core.backends.base.VisionAsker.ask`, without
        tag hints (``jpeg`` is the vision model's part of :meth:`prepare`). Raises its errors,
        and :class:`CaptionError` when the vision captioner cannot ask (not a vision model)."""
        if not isinstance(self.vision, VisionAsker):
            raise CaptionError(f"The {self.backend} backend cannot answer requests other than "
                               "captions.")
        return self.vision.ask(jpeg, prompt, json_schema=json_schema)

    def learned_options(self) -> dict[str, Any]:
        """What the vision captioner learned about its server (see
        :func:`loracap.core.backends.registry.learned_options`)."""
        learned = getattr(self.vision, "learned_options", None)
        return dict(learned()) if callable(learned) else {}

    def close(self) -> None:
        """Close both."""
        try:
            self.vision.close()
        finally:
            self.tagger.close()
