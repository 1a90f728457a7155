"""The command line's choice of captioning backend: ``--backend``, ``--model``, ``--base-url``,
``--model-dir``, the key, the model download of a local tagger, ``caption --estimate`` and
``loracap models``. The rules themselves are the core's (:mod:`loracap.core.backends.registry`,
:mod:`loracap.core.estimate`); this module turns arguments into them and writes the results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from loracap.core.text import json_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from loracap.core.backends.base import BackendConfig, Captioner
    from loracap.core.project import Project
    from loracap.core.records import ModelUsage

EXIT_OK = 0


def add_backend_arguments(parser: argparse.ArgumentParser, *, saved: bool) -> None:
    """``--backend``, ``--model``, ``--base-url``, ``--model-dir``. ``saved``: the values become
    the project's (``new``), else they apply to this batch (``caption``, ``run``)."""
    from loracap.core.backends.registry import backend_names

    when = "the project's default" if saved else \
        "this batch only; the project keeps its own"
    parser.add_argument("--backend", choices=backend_names(), default=None,
                        help=f"captioning backend ({when}): gemini, openai (any "
                        "OpenAI-compatible server: OpenAI, Ollama, LM Studio, vLLM, OpenRouter), "
                        "anthropic (Claude) or wd14 (local tagger)")
    parser.add_argument("--model", default=None,
                        help="model name (default: the project's, else the backend's default; "
                        "`loracap models` lists them)")
    parser.add_argument("--base-url", default=None, metavar="URL",
                        help="server address, e.g. http://localhost:11434/v1 for Ollama "
                        "(default: the project's, else OPENAI_BASE_URL / ANTHROPIC_BASE_URL)")
    if not saved:
        parser.add_argument("--model-dir", type=Path, default=None, metavar="DIR",
                            help="wd14: a folder holding model.onnx and selected_tags.csv "
                            "(nothing is downloaded)")


def batch_config(project: Project, args: argparse.Namespace) -> BackendConfig:
    """The backend configuration of this batch (see
    :func:`loracap.core.backends.registry.resolve_config`). A ``--model`` or ``--base-url`` for
    the project's own backend is saved in the project, as the window saves a choice."""
    from loracap.core.backends.base import check_base_url
    from loracap.core.backends.registry import resolve_config
    from loracap.core.trusted_servers import trust_server

    settings = project.settings
    backend = getattr(args, "backend", None)
    model = getattr(args, "model", None)
    base_url = getattr(args, "base_url", None)
    if base_url:
        # The user named this server: their key may go there, now and in later batches.
        trust_server(backend or settings.backend, check_base_url(base_url))
    if backend in (None, settings.backend):
        changes = {}
        if model:
            changes["model"] = model
        if base_url is not None:
            changes["base_url"] = base_url
        if changes and not project.read_only:
            settings = project.update_settings(**changes)
    model_dir = getattr(args, "model_dir", None)
    return resolve_config(
        settings, backend=backend, model=model, base_url=base_url,
        model_dir=model_dir.expanduser() if model_dir is not None else None,
        timeout_s=getattr(args, "timeout", 60.0),
    )


def batch_pace(config: BackendConfig, args: argparse.Namespace) -> tuple[int, int]:
    """``(workers, rpm)``: the user's ``--workers``/``--rpm``, else the backend's defaults."""
    from loracap.core.backends.registry import batch_defaults

    workers, rpm = batch_defaults(config)
    return (args.workers if args.workers is not None else workers,
            args.rpm if args.rpm is not None else rpm)


def make_captioner(config: BackendConfig, err: TextIO = sys.stderr) -> Captioner:
    """The batch's captioner, loaded; a WD14 model (the backend's or the hint tagger's) not yet
    on this machine is downloaded first, with a progress line on ``err``."""
    from loracap.core.backends.registry import create_captioner, load_captioner, local_models

    for local in local_models(config):
        _download_tagger(local.model, err)
    captioner = create_captioner(config)
    try:
        load_captioner(captioner)
    except BaseException:
        captioner.close()
        raise
    return captioner


def _download_tagger(model: str, err: TextIO) -> None:
    from loracap.cli import _Progress
    from loracap.core.backends.wd14 import ensure_model
    from loracap.core.text import human_size

    progress = _Progress(err)
    state = {"last": -1}

    def on_progress(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 0
        if progress.interactive or percent // 10 != state["last"] // 10:
            state["last"] = percent
            progress.show(f"Downloading the WD14 model {model}: {human_size(done)}"
                          + (f" of {human_size(total)}" if total else ""),
                          done / total if total else None)

    try:
        ensure_model(model, progress=on_progress)
    finally:
        progress.clear()


def save_learned(project: Project, config: BackendConfig, captioner: object, *,
                 answered: bool) -> None:
    """Keep in the project what the captioner learned about its server (an OpenAI-compatible
    server that takes no structured output; the model it picked when the server has only one),
    so the next batch does not ask again."""
    from loracap.core.backends.registry import options_to_keep

    if project.read_only:
        return
    keep = options_to_keep(captioner, config, project.settings, answered=answered)
    if keep:
        project.update_backend_options(config.backend, **keep)
    settings = project.settings
    chosen = getattr(captioner, "model", "")
    if not config.model and chosen and config.backend == settings.backend and not settings.model:
        project.update_settings(model=chosen)  # the server's only model, picked for the user


def write_estimate(project: Project, config: BackendConfig, image_ids: list[int],
                   max_side: int, as_json: bool, out: TextIO = sys.stdout, *,
                   batch: bool = False) -> int:
    """Print what captioning ``image_ids`` should take (``caption --estimate``); nothing is sent
    and no key is needed. ``batch``: as one batch API job, at its discount
    (:data:`loracap.core.batches.base.BATCH_DISCOUNT`)."""
    from loracap.core.estimate import estimate_for_images
    from loracap.core.pricing import format_cost

    estimate, cost = estimate_for_images(project, config, image_ids, max_side, batch=batch)
    if as_json:
        out.write(json_text({
            "backend": estimate.backend, "model": estimate.model, "requests": estimate.requests,
            "input_tokens": estimate.input_tokens, "output_tokens": estimate.output_tokens,
            "cost_usd": cost, "output_assumed": estimate.output_assumed,
            "batch": batch, "cost_one_by_one_usd": estimate.cost,
            "prices_as_of": estimate.prices_as_of}) + "\n")
        return EXIT_OK
    if not estimate.requests:
        out.write("Nothing to caption with these options (see --only); nothing was sent.\n")
        return EXIT_OK
    model = estimate.model or "(the server's model)"
    out.write(f"Estimate for {estimate.requests} image(s) with {estimate.backend} {model} "
              "(nothing was sent):\n")
    out.write(f"  requests: {estimate.requests:,}\n")
    if estimate.requests != estimate.images:
        out.write(f"    ({estimate.requests / estimate.images:.1f} per image: multi-person "
                  "captions ask about each person and the scene; people counted from earlier "
                  "detections, else 2 assumed)\n")
    out.write(f"  input tokens: {estimate.input_tokens:,}\n")
    assumed = " (assumed: no earlier answer to go by)" if estimate.output_assumed else ""
    out.write(f"  output tokens: {estimate.output_tokens:,}{assumed}\n")
    if estimate.cost is None:
        out.write(f"  cost: unknown (no price for {estimate.backend} {model}; add one to "
                  "prices.json, see `loracap prices`)\n")
    elif batch and cost is not None:
        out.write(f"  cost: {format_cost(cost)} as a batch job, half of "
                  f"{format_cost(estimate.cost)} one by one (prices of "
                  f"{estimate.prices_as_of}; edit them in prices.json, see `loracap prices`)\n")
    else:
        out.write(f"  cost: {format_cost(estimate.cost)} (prices of {estimate.prices_as_of}; "
                  "edit them in prices.json, see `loracap prices`)\n")
    return EXIT_OK


def write_usage(usages: Sequence[ModelUsage], out: TextIO) -> list[dict[str, object]]:
    """Write a project's token usage (:meth:`~loracap.core.project.Project.token_usage`) and
    its cost per backend and model to ``out``, a line each (``info``); returns the same as
    JSON-ready dicts."""
    from loracap.core.pricing import format_cost, load_prices

    prices = load_prices()
    rows: list[dict[str, object]] = []
    for usage in usages:
        cost = prices.cost(usage.backend, usage.model, usage.input_tokens, usage.output_tokens)
        rows.append({"backend": usage.backend, "model": usage.model, "answers": usage.answers,
                     "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                     "cost_usd": cost})
        priced = f"about {format_cost(cost)}" if cost is not None else \
            "cost unknown (no price in prices.json)"
        out.write(f"  {usage.backend} {usage.model}: {usage.answers} answer(s), "
                  f"{usage.input_tokens:,} input + {usage.output_tokens:,} output tokens, "
                  f"{priced}\n")
    return rows


def cmd_models(args: argparse.Namespace) -> int:
    """``loracap models [PROJECT] [--backend NAME] [--base-url URL]``: the models a backend
    offers, one per line."""
    from loracap.core.backends.registry import list_models, resolve_config
    from loracap.core.project import Project
    from loracap.core.records import ProjectSettings

    if args.project is not None:
        with Project.open(args.project.expanduser(), read_only=True) as project:
            settings = project.settings
    else:
        settings = ProjectSettings(name="", trigger="x", profile="space", custom_prompt="",
                                   prefix_template="", model="",
                                   backend=args.backend or "gemini")
    config = resolve_config(settings, backend=args.backend, base_url=args.base_url,
                            timeout_s=args.timeout)
    names = list_models(config)
    if args.json:
        sys.stdout.write(json_text(names) + "\n")
    else:
        for name in names:
            sys.stdout.write(name + "\n")
    return EXIT_OK


def cmd_prices(args: argparse.Namespace) -> int:
    """``loracap prices``: the price table in use, its date and source, and where to edit it."""
    from loracap.core.pricing import load_prices, user_prices_path

    table = load_prices()
    if args.json:
        sys.stdout.write(json_text({
            "as_of": table.as_of, "source": table.source, "file": str(user_prices_path()),
            "prices": {key: {"input": p.input, "output": p.output}
                       for key, p in sorted(table.prices.items())}}) + "\n")
        return EXIT_OK
    out = sys.stdout
    out.write(f"Prices in US dollars per million tokens (input / output), as of {table.as_of}; "
              f"source: {table.source}\n")
    for key, price in sorted(table.prices.items()):
        out.write(f"  {key}: {price.input:g} / {price.output:g}\n")
    out.write(f"Your own prices go in {user_prices_path()} (JSON: "
              '{"as_of": ..., "source": ..., "prices": {"backend/model": {"input": 0.3, '
              '"output": 2.5}}}).\n')
    return EXIT_OK
