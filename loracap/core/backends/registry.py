"""The captioning backends by name, what each needs, and how to build one.

Each backend module (``loracap.core.backends.<module>``) has ``create(config) -> Captioner`` and
``list_models(config) -> list[str]``; it is imported only when used, so that an optional
dependency (``onnxruntime`` for WD14) is needed only by whoever uses that backend.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loracap.core.defaults import DEFAULT_MODEL
from loracap.core.errors import InputError

if TYPE_CHECKING:
    # Imported where used: the checks of a project file read BACKENDS without the backends'
    # protocol.
    from loracap.core.backends.base import BackendConfig, Captioner
    from loracap.core.records import ProjectSettings


@dataclass(frozen=True)
class BackendInfo:
    """One backend: ``name`` as typed (``--backend openai``), ``label`` as shown, the module
    that implements it, its default model, the environment variables of its key and base URL,
    whether it needs a key at all (``"required"``, ``"optional"`` for servers that may not
    ask for one, ``"none"``), and its default concurrency (``workers`` requests at once) and
    rate limit (``rpm`` request starts per minute, 0 for none)."""

    name: str
    label: str
    module: str
    default_model: str
    key: str
    key_env: tuple[str, ...]
    base_url_env: str
    workers: int
    rpm: int
    vision: bool = True


BACKENDS: dict[str, BackendInfo] = {
    info.name: info
    for info in (
        BackendInfo("gemini", "Google Gemini", "gemini", DEFAULT_MODEL, "required",
                    ("GOOGLE_API_KEY", "GEMINI_API_KEY"), "GOOGLE_GEMINI_BASE_URL", 4, 10),
        # OpenAI's own endpoint by default; presets (openai_presets) for local servers.
        BackendInfo("openai", "OpenAI-compatible server", "openai_compat", "",
                    "optional", ("OPENAI_API_KEY",), "OPENAI_BASE_URL", 4, 60),
        BackendInfo("anthropic", "Anthropic Claude", "anthropic_claude", "claude-haiku-4-5",
                    "required", ("ANTHROPIC_API_KEY",), "ANTHROPIC_BASE_URL", 4, 50),
        BackendInfo("wd14", "WD14 tagger (local)", "wd14", "wd-eva02-large-tagger-v3", "none",
                    (), "", 1, 0, vision=False),
    )
}


def backend_names() -> list[str]:
    """The backend names in the order they are offered."""
    return list(BACKENDS)


def backend_info(name: str) -> BackendInfo:
    """The backend called ``name``; raises :class:`InputError` naming the known ones."""
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(BACKENDS)
        raise InputError(f"There is no captioning backend called '{name}' (choose one of: "
                         f"{known}).") from None


def check_backend_options(value: str | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The backends' own settings as stored in a project: a JSON object (or a mapping) whose keys
    are backend names and whose values are JSON objects. Unknown backend names are kept (a newer
    LoRACap's), values are not interpreted here (each backend validates its own). Raises
    :class:`InputError` for text that is not such an object."""
    if isinstance(value, str):
        try:
            loaded = json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise InputError(f"The backend settings are not JSON ({exc}).") from None
    else:
        loaded = dict(value)
    if not isinstance(loaded, dict) or not all(
            isinstance(key, str) and isinstance(item, dict) for key, item in loaded.items()):
        raise InputError("The backend settings are not an object of objects by backend name.")
    return {key: dict(item) for key, item in loaded.items()}


def _module(name: str) -> Any:
    return importlib.import_module(f"loracap.core.backends.{backend_info(name).module}")


def create_captioner(config: BackendConfig) -> Captioner:
    """A captioner for ``config.backend`` -- with ``config.hints``, wrapped so that a WD14
    tagger gives it hints (:class:`~loracap.core.backends.combined.HintedCaptioner`). Raises
    what the backend raises for a bad setting (an :class:`InputError` for a URL or model folder
    that cannot be used, a :class:`~loracap.core.errors.LoraCapError` for a missing optional
    dependency). Call :func:`load_captioner` before a batch."""
    captioner: Captioner = _module(config.backend).create(config)
    if config.hints is None:
        return captioner
    from loracap.core.backends.combined import HintedCaptioner

    try:
        tagger = _module(config.hints.backend).create(config.hints)
    except BaseException:
        captioner.close()
        raise
    return HintedCaptioner(captioner, tagger)


def load_captioner(captioner: Captioner) -> None:
    """Load what ``captioner`` loads lazily (a local model) now: a long step, for a worker or
    background thread before the batch, so that a broken model is one clear error."""
    load = getattr(captioner, "load", None)
    if callable(load):
        load()


def local_models(config: BackendConfig) -> list[BackendConfig]:
    """The configurations in ``config`` (itself, its hint tagger) whose model is a local
    WD14 model that may need downloading (no ``model_dir``)."""
    return [c for c in (config, config.hints)
            if c is not None and c.backend == "wd14" and c.model_dir is None]


def list_models(config: BackendConfig) -> list[str]:
    """The models ``config.backend`` offers (the server's list, or the known WD14 models)."""
    models: list[str] = _module(config.backend).list_models(config)
    return models


def resolve_config(
    settings: ProjectSettings,
    *,
    backend: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    model_dir: Path | None = None,
    timeout_s: float = 60.0,
    need_key: bool = True,
) -> BackendConfig:
    """The backend configuration of a batch: the project's ``settings`` with a batch's
    overrides (None: not overridden). With another backend than the project's, the project's
    model and base URL are not used (they belong to its own backend): the model last used with
    that backend in this project (its options' ``model``), else its default model; its base URL
    environment variable (``OPENAI_BASE_URL``, ...) or its default. A
    vision backend whose project options turn on ``tagger_hints`` gets its WD14 tagger in
    ``hints`` (combined captions).

    The key comes from :func:`loracap.core.keys.find_api_key` for a backend that requires one
    (raising :class:`~loracap.core.errors.ApiKeyMissingError`, exit 3, when there is none), is
    looked for but optional for an OpenAI-compatible server (a local server needs none), and
    is not looked for at all by a local tagger, nor when ``need_key`` is False (an estimate
    sends nothing). A key goes to a base URL read from the project only when the user chose
    that server (:mod:`loracap.core.trusted_servers`; else
    :class:`~loracap.core.trusted_servers.UntrustedServerError`, exit 2). Raises
    :class:`InputError` for an unknown backend or a base URL that cannot be one.
    """
    from loracap.core.backends.base import BackendConfig, check_base_url
    from loracap.core.keys import find_api_key, find_optional_api_key

    name = backend or settings.backend
    info = backend_info(name)
    own = name == settings.backend
    options = dict(settings.options_for(name))
    chosen_model = (model or (settings.model if own else "") or str(options.get("model") or "")
                    or info.default_model)
    url = base_url if base_url is not None else (settings.base_url if own else "")
    from_project = base_url is None and bool(url)
    if not url and info.base_url_env:
        url = os.environ.get(info.base_url_env, "")
    url = check_base_url(url, name)
    if not need_key:
        api_key = ""
    elif info.key == "required":
        api_key = find_api_key(name).value
    elif info.key == "optional":
        found = find_optional_api_key(name)
        api_key = found.value if found else ""
    else:
        api_key = ""
    if api_key and from_project:
        from loracap.core.keys import key_service
        from loracap.core.trusted_servers import check_project_server

        check_project_server(name, url, key_service(name).label)
    hints = None
    # Tagger hints, or the LoRA-tags multi-person profile, which tags each person with WD14.
    if info.vision and (options.get("tagger_hints")
                        or settings.profile == "multi-person-tags"):
        tagger = BACKENDS["wd14"]
        hints = BackendConfig(
            backend=tagger.name, model=str(options.get("tagger_model") or tagger.default_model),
            options=dict(settings.options_for(tagger.name)), tag_separator=", ",
        )
    return BackendConfig(
        backend=name, model=chosen_model, base_url=url, api_key=api_key, timeout_s=timeout_s,
        options=options, tag_separator=settings.tag_separator, model_dir=model_dir, hints=hints,
    )


def batch_defaults(config: BackendConfig) -> tuple[int, int]:
    """``(workers, rpm)`` a batch of ``config`` runs with unless the user says otherwise: the
    backend's (:class:`BackendInfo`), or for an OpenAI-compatible server the preset its base
    URL matches (a local server: one or two requests at once and no rate limit). ``rpm`` 0
    means no limit."""
    info = backend_info(config.backend)
    if config.backend == "openai" and config.base_url:
        from loracap.core.backends.openai_compat import preset_for_url

        preset = preset_for_url(config.base_url)
        if preset is not None:
            return preset.workers, preset.rpm
    return info.workers, info.rpm


def options_to_keep(captioner: object, config: BackendConfig, settings: ProjectSettings, *,
                    answered: bool) -> dict[str, Any]:
    """What the project should keep for ``config.backend`` after a batch: what the captioner
    learned (:func:`learned_options`) and, when the batch ran on another backend than the
    project's and got at least one caption (``answered``), the model it used, so the next batch
    on that backend uses it again (a model that never answered is not worth remembering)."""
    keep = learned_options(captioner)
    model = str(getattr(captioner, "model", "") or config.model)
    if answered and config.backend != settings.backend and model and \
            settings.options_for(config.backend).get("model") != model:
        keep["model"] = model
    return keep


def learned_options(captioner: object) -> dict[str, Any]:
    """What ``captioner`` learned about its server during a batch and the project should keep
    (an OpenAI-compatible server without structured output), or ``{}``."""
    learned = getattr(captioner, "learned_options", None)
    return dict(learned()) if callable(learned) else {}
