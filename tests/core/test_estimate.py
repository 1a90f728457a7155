"""The estimate of a project's images (:func:`loracap.core.estimate.estimate_for_images`), the one
``caption --estimate [--batch]`` prints and Send to Batch API… shows: read from a real project
file, with the sizes, prompt, earlier answers and people of that project."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from loracap.core.backends.base import TokenUsage
from loracap.core.backends.registry import resolve_config
from loracap.core.batches.base import BATCH_DISCOUNT
from loracap.core.estimate import (
    ASSUMED_OUTPUT_TOKENS,
    estimate_batch,
    estimate_for_images,
    image_tokens,
)
from loracap.core.pricing import load_prices
from loracap.core.project import Project
from loracap.core.prompts import Profile, build_instructions
from loracap.core.scan import scan_folder
from tests.fakes.photos import make_photo


def new_project(tmp_path: Path, profile: str = "space") -> Path:
    folder = tmp_path / "hall"
    for number, size in enumerate([(640, 480), (2000, 1500), (300, 200)]):
        make_photo(folder / f"IMG_{number}.jpg", size=size, seed=number)
    path = folder / "hall.loraproj"
    with Project.create(path, trigger="hall", backend="gemini", profile=profile) as project:
        project.add_scanned(scan_folder(folder))
    return path


def test_the_estimate_rests_on_the_projects_sizes_prompt_and_answers(tmp_path: Path) -> None:
    with Project.open(new_project(tmp_path)) as project:
        config = resolve_config(project.settings, need_key=False)
        first, second, third = project.images()
        settings = project.settings
        prompt = build_instructions(Profile(settings.profile), settings.custom_prompt,
                                    language=settings.language).prompt

        estimate, cost = estimate_for_images(project, config, [first.id, second.id, 9999],
                                             1024)
        assert (estimate.images, estimate.requests) == (2, 2)  # an unknown id is left out
        assert estimate.input_tokens == sum(
            image_tokens("gemini", rec.width, rec.height, 1024) + math.ceil(len(prompt) / 4)
            for rec in (first, second))
        assert estimate.output_assumed
        assert estimate.output_tokens == 2 * ASSUMED_OUTPUT_TOKENS
        assert cost == estimate.cost  # one by one: the full price

        # Answers of the same backend and model give the output tokens; others do not.
        project.store_generated(third.id, "a hall", backend=config.backend, model=config.model,
                                prompt=prompt, usage=TokenUsage(1000, 30))
        project.store_generated(third.id, "a hall", backend=config.backend, model=config.model,
                                prompt=prompt, usage=TokenUsage(1000, 50))
        project.store_generated(third.id, "hall", backend="wd14", model="wd-vit-tagger-v3",
                                prompt="", usage=TokenUsage(0, 900))
        known, batch_cost = estimate_for_images(project, config, [first.id, second.id], 1024,
                                                batch=True)
        assert not known.output_assumed and known.output_tokens == 2 * 40
        assert known == estimate_batch("gemini", config.model,
                                       [(first.width, first.height),
                                        (second.width, second.height)],
                                       max_side=1024, prompt=prompt, prices=load_prices(),
                                       mean_output_tokens=40.0)
        if known.cost is None:
            assert batch_cost is None
        else:
            assert batch_cost == pytest.approx(known.cost * BATCH_DISCOUNT)


def test_multi_person_captions_count_each_request(tmp_path: Path) -> None:
    with Project.open(new_project(tmp_path, profile="multi-person")) as project:
        config = resolve_config(project.settings, need_key=False)
        ids = [rec.id for rec in project.images()]
        estimate, _cost = estimate_for_images(project, config, ids, 1024)
        # The detection, two people assumed before any detection, and the scene.
        assert (estimate.images, estimate.requests) == (3, 12)
        single, _ = estimate_for_images(project, config, [], 1024)
        assert (single.images, single.requests, single.input_tokens) == (0, 0, 0)
