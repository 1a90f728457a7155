"""The captioning backends by name, what each needs, and how to build one.

Each backend module (``loracap.core.backends.<module>``) has ``create(config) -> Captioner`` and
``list_models(config) -> list[str]``; it is imported only when used, so that an optional
dependency (``onnxruntime`` for WD14) is needed only by whoever uses that backend.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from loracap.core.backends.base import BackendConfig, Captioner
from loracap.core.defaults import DEFAULT_MODEL
from loracap.core.errors import InputError


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


def _module(name: str) -> Any:
    return importlib.import_module(f"loracap.core.backends.{backend_info(name).module}")


def create_captioner(config: BackendConfig) -> Captioner:
    """A captioner for ``config.backend``; raises what the backend raises for a bad setting
    (an :class:`InputError` for a URL or model folder that cannot be used, a
    :class:`~loracap.core.errors.LoraCapError` for a missing optional dependency)."""
    captioner: Captioner = _module(config.backend).create(config)
    return captioner


def list_models(config: BackendConfig) -> list[str]:
    """The models ``config.backend`` offers (the server's list, or the known WD14 models)."""
    models: list[str] = _module(config.backend).list_models(config)
    return models
