"""A dry run of a captioning batch: the requests, tokens and cost it should take, before anything
is spent (``loracap caption --estimate``).

Input tokens per image follow each service's documented image rules, applied to the image as it
is sent (long side at most ``max_side`` px, never enlarged):

* Gemini (PRODUCT.md, "Image cost"): an image with both sides at most 384 px costs 258 tokens;
  a larger one is cut into tiles of side ``min(w, h) / 1.5`` clamped to 256-768 px, 258 tokens
  per tile.
* Claude (Anthropic's vision docs): about ``w * h / 750`` tokens after the long side is brought
  to at most 1568 px, and at most about 1,600 tokens.
* OpenAI-compatible (OpenAI's vision docs for the GPT-4o/4.1 family, "high" detail): the image
  is fitted in 2048 x 2048, then its short side brought to 768 px; 85 tokens plus 170 per 512-px
  tile. Other servers count their own way; the figure is a guide.
* WD14 runs locally: no tokens.

The prompt adds about one token per four characters. Output tokens are the mean of this
project's earlier answers from the same backend and model, else :data:`ASSUMED_OUTPUT_TOKENS`
(said so in the estimate).

:func:`estimate_for_images` is the estimate of a project's images as the command line
(``caption --estimate [--batch]``) and the window (Send to Batch API…) show it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loracap.core.pricing import PriceTable

if TYPE_CHECKING:
    from loracap.core.backends.base import BackendConfig
    from loracap.core.project import Project

#: Output tokens per answer assumed when the project has no earlier answer to go by: a caption
#: of 60-80 words.
ASSUMED_OUTPUT_TOKENS = 100

#: Gemini: tokens per image tile, and the side (px) up to which an image is one tile.
GEMINI_TILE_TOKENS = 258
GEMINI_SMALL_SIDE = 384
#: Claude: the long side (px) images are brought down to, the pixels per token, and the most
#: tokens one image costs.
CLAUDE_MAX_SIDE = 1568
CLAUDE_PIXELS_PER_TOKEN = 750
CLAUDE_MAX_IMAGE_TOKENS = 1600


@dataclass(frozen=True)
class Estimate:
    """What a batch should take: ``images``, the number of images; ``requests`` (one per image,
    more for multi-person captions), ``input_tokens`` and ``output_tokens`` in all, ``cost``
    in dollars (None when the model has no price), ``output_assumed`` True when output tokens
    are :data:`ASSUMED_OUTPUT_TOKENS` per answer rather than this project's mean, and the
    price table's date (``prices_as_of``)."""

    backend: str
    model: str
    images: int
    requests: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    output_assumed: bool
    prices_as_of: str


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` image with its long side at most ``max_side``."""
    long_side = max(width, height)
    if long_side <= max_side or long_side <= 0:
        return width, height
    scale = max_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def image_tokens(backend: str, width: int, height: int, max_side: int) -> int:
    """Input tokens of one ``width`` x ``height`` image (px) sent by ``backend`` with its long
    side at most ``max_side`` (rules in the module docstring); 0 for an unknown size."""
    if width <= 0 or height <= 0:
        return 0
    if backend == "gemini":
        w, h = _fit(width, height, max_side)
        if w <= GEMINI_SMALL_SIDE and h <= GEMINI_SMALL_SIDE:
            return GEMINI_TILE_TOKENS
        tile = min(768.0, max(256.0, min(w, h) / 1.5))
        return GEMINI_TILE_TOKENS * math.ceil(w / tile) * math.ceil(h / tile)
    if backend == "anthropic":
        w, h = _fit(width, height, min(max_side, CLAUDE_MAX_SIDE))
        return min(CLAUDE_MAX_IMAGE_TOKENS, math.ceil(w * h / CLAUDE_PIXELS_PER_TOKEN))
    if backend == "openai":
        w, h = _fit(width, height, min(max_side, 2048))
        short = min(w, h)
        if short > 768:
            w, h = round(w * 768 / short), round(h * 768 / short)
        return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)
    return 0


def estimate_batch(
    backend: str,
    model: str,
    sizes: Iterable[tuple[int | None, int | None]],
    *,
    max_side: int,
    prompt: str,
    prices: PriceTable,
    mean_output_tokens: float | None = None,
    requests_per_image: float = 1.0,
) -> Estimate:
    """The estimate of captioning images of ``sizes`` (width, height in px; None when unknown)
    with ``backend``'s ``model``. ``mean_output_tokens`` is this project's mean per answer from
    that backend and model, or None. ``requests_per_image``: how many requests one image takes
    (a multi-person caption: the detection, one per person, the scene --
    :func:`people_requests`); each is counted as an image as large as the whole one (an upper
    bound: a person's crop is smaller)."""
    sizes = list(sizes)
    local = backend == "wd14"
    prompt_tokens = 0 if local else math.ceil(len(prompt) / 4)
    per_image = requests_per_image
    input_tokens = round(per_image * sum(image_tokens(backend, w or 0, h or 0, max_side)
                                         + prompt_tokens for w, h in sizes))
    assumed = mean_output_tokens is None and not local
    per_answer = 0.0 if local else (mean_output_tokens if mean_output_tokens is not None
                                    else ASSUMED_OUTPUT_TOKENS)
    requests = round(per_image * len(sizes))
    output_tokens = round(per_answer * requests)
    cost = prices.cost(backend, model, input_tokens, output_tokens)
    return Estimate(backend=backend, model=model, images=len(sizes), requests=requests,
                    input_tokens=input_tokens, output_tokens=output_tokens, cost=cost,
                    output_assumed=assumed, prices_as_of=prices.as_of)


#: People per image assumed by an estimate of multi-person captions before any detection.
ASSUMED_PEOPLE = 2.0


def people_requests(mode: str, *, local_detector: bool, mean_people: float | None) -> float:
    """Requests per image of a multi-person caption: the detection (none with a local
    detector), then in ``natural`` mode one per person and one for the scene (the LoRA
    ``tags`` mode tags people locally). ``mean_people`` is this project's mean so far, else
    :data:`ASSUMED_PEOPLE`."""
    people = ASSUMED_PEOPLE if mean_people is None else mean_people
    detection = 0.0 if local_detector else 1.0
    return detection + (people + 1.0 if mode == "natural" else 0.0)


def estimate_for_images(project: Project, config: BackendConfig, image_ids: Iterable[int],
                        max_side: int, *, batch: bool = False
                        ) -> tuple[Estimate, float | None]:
    """The :class:`Estimate` of captioning ``project``'s images ``image_ids`` with ``config``
    (unknown ids are left out), sent with their long side at most ``max_side`` px, and the
    cost to pay in dollars: the estimate's cost, at the batch discount
    (:data:`loracap.core.batches.base.BATCH_DISCOUNT`) when ``batch``; None when the model
    has no price. ``caption --estimate [--batch]`` and the window's Send to Batch API… show it.

    What it rests on: each image's size as stored at import; the project's instructions as
    the prompt; output tokens per answer from this project's answers from the same backend
    and model (:meth:`~loracap.core.project.Project.token_usage`); for multi-person captions
    the requests per image of :func:`people_requests`, people counted from this project's
    detections; the price table of :func:`~loracap.core.pricing.load_prices`. Reads the
    project only: nothing is sent and no key is needed."""
    from loracap.core.batches.base import BATCH_DISCOUNT
    from loracap.core.captioning_people import people_options
    from loracap.core.pricing import load_prices
    from loracap.core.prompts import Profile, build_instructions

    settings = project.settings
    prompt = build_instructions(Profile(settings.profile), settings.custom_prompt,
                                language=settings.language).prompt
    sizes = [(rec.width, rec.height) for rec in project.images_by_id(image_ids)]
    mean = next((usage.output_tokens / usage.answers for usage in project.token_usage()
                 if (usage.backend, usage.model) == (config.backend, config.model)
                 and usage.answers), None)
    per_image = 1.0
    people = people_options(settings)
    if people is not None:
        found = list(project.people_found().values())
        per_image = people_requests(people.mode, local_detector=people.detector is not None,
                                    mean_people=sum(found) / len(found) if found else None)
    estimate = estimate_batch(config.backend, config.model, sizes, max_side=max_side,
                              prompt=prompt, prices=load_prices(), mean_output_tokens=mean,
                              requests_per_image=per_image)
    cost = estimate.cost
    if batch and cost is not None:
        cost *= BATCH_DISCOUNT
    return estimate, cost
