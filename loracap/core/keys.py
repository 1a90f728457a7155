"""Where an API key comes from: the environment, then the OS keychain -- one key per backend.

Gemini: ``GOOGLE_API_KEY``, then ``GEMINI_API_KEY`` (the google-genai SDK's own precedence: it
prefers ``GOOGLE_API_KEY`` when both are set), then the OS keychain through ``keyring`` under
service ``"LoRACap"``, user ``"gemini-api-key"``; keys are created at Google AI Studio
(https://aistudio.google.com/apikey). OpenAI-compatible servers: ``OPENAI_API_KEY`` (the openai
SDK's variable), then user ``"openai-api-key"``; a local server needs none. Claude:
``ANTHROPIC_API_KEY`` (the anthropic SDK's), then user ``"anthropic-api-key"``
(:data:`KEY_SERVICES`). A key's value is never logged or printed (every key read or saved is
given to :func:`loracap.core.logs.add_secret`).

A key is checked wherever it comes from, after its surrounding whitespace (a paste's trailing
line break) is removed: it must be printable ASCII without whitespace (``!`` to ``~``), which
every Google API key is. Anything else -- a line break or space inside, a control or non-ASCII
character -- is refused with :class:`ApiKeyFormatError` (exit 3) before it reaches an HTTP
header, where it would fail with the key quoted in the error.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import keyring
import keyring.backends.fail
import keyring.backends.null
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from loracap.core.errors import ApiKeyMissingError, InputError, LoraCapError
from loracap.core.logs import add_secret

logger = logging.getLogger(__name__)

KEYRING_SERVICE = "LoRACap"
KEYRING_USERNAME = "gemini-api-key"
AI_STUDIO_URL = "https://aistudio.google.com/apikey"
ENV_VARIABLES: tuple[str, ...] = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
KEYCHAIN_SOURCE = "OS keychain"


@dataclass(frozen=True)
class KeyService:
    """Where one backend's key lives: ``label`` as shown ("Gemini"), the environment variables
    read in order, the keychain user name, and where a key is created (``where``)."""

    backend: str
    label: str
    env: tuple[str, ...]
    keyring_user: str
    where: str


#: The keys by backend name; a backend without an entry needs no key (WD14 runs locally).
KEY_SERVICES: dict[str, KeyService] = {
    "gemini": KeyService("gemini", "Gemini", ENV_VARIABLES, KEYRING_USERNAME,
                         f"Google AI Studio ({AI_STUDIO_URL})"),
    "openai": KeyService("openai", "OpenAI-compatible server", ("OPENAI_API_KEY",),
                         "openai-api-key",
                         "your server's settings, or https://platform.openai.com/api-keys"),
    "anthropic": KeyService("anthropic", "Claude", ("ANTHROPIC_API_KEY",), "anthropic-api-key",
                            "the Claude Console (https://console.anthropic.com/settings/keys)"),
}


def key_service(backend: str) -> KeyService:
    """The key of ``backend``; raises :class:`InputError` for a backend that takes no key."""
    try:
        return KEY_SERVICES[backend]
    except KeyError:
        raise InputError(f"The {backend} backend takes no API key (choose one of "
                         f"{', '.join(KEY_SERVICES)}).") from None


@dataclass(frozen=True)
class ApiKey:
    """An API key and where it was found: ``"GOOGLE_API_KEY"``, ``"GEMINI_API_KEY"`` or
    ``"OS keychain"``. ``repr()``/``str()`` never show the value."""

    value: str = field(repr=False)
    source: str

    def __repr__(self) -> str:
        return f"ApiKey(source={self.source!r}, value=<hidden>)"

    __str__ = __repr__


class ApiKeyFormatError(ApiKeyMissingError):
    """A key was found or given but cannot be an API key (see the module docstring); the
    message says where it is and what is wrong with it, never its value. Exit code 3; a
    subclass of :class:`ApiKeyMissingError` because there is no usable key either way."""


#: Characters ``str.splitlines`` treats as line boundaries.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def _what_is_wrong(key: str) -> str | None:
    """What in ``key`` (stripped) an API key never has, or None when it can be one."""
    for char in key:
        if "!" <= char <= "~":
            continue
        if char in _LINE_BREAKS:
            return "a line break"
        if char.isspace():
            return "a space"
        if char.isprintable():
            return "a character that is not plain ASCII"
        return "a control character"
    return None


def check_api_key(value: str, source: str | None = None, backend: str = "gemini") -> str:
    """``value`` without its surrounding whitespace, when it can be an API key (printable
    ASCII, no whitespace). ``source`` names where it was found (an environment variable or
    ``"OS keychain"``); None means it is being saved.

    Raises :class:`ApiKeyFormatError` saying what is wrong and what to do (never the value).
    """
    key = value.strip()
    problem = _what_is_wrong(key)
    if problem is None:
        return key
    add_secret(value)
    service = key_service(backend)
    fix = f"Copy the key from {service.where} once more"
    if source is None:
        message = (f"This API key contains {problem}, which an API key never has (a bad "
                   f"paste?); nothing was stored. {fix} and save it.")
    elif source == KEYCHAIN_SOURCE:
        message = (f"The {service.label} API key saved in the OS keychain contains {problem}, "
                   f"which an API key never has. {fix} and save it with `{_set_command(backend)}`"
                   " (or in File > Settings… in the window).")
    else:
        message = (f"The {service.label} API key in {source} contains {problem}, which an API "
                   f"key never has (a bad paste?). {fix} and set {source} to it.")
    raise ApiKeyFormatError(message)


def _set_command(backend: str) -> str:
    return "loracap key set" + ("" if backend == "gemini" else f" --backend {backend}")


class _KeychainUnavailable(Exception):
    """Internal: the keyring backend cannot be used; the message says why."""


def find_api_key(backend: str = "gemini") -> ApiKey:
    """The API key of ``backend`` to use, from the first of its environment variables
    (:data:`KEY_SERVICES`; Gemini: ``GOOGLE_API_KEY``, ``GEMINI_API_KEY``) and the OS keychain
    that holds a non-blank value (surrounding whitespace removed).

    Raises :class:`ApiKeyMissingError` saying where to create a key and how to give it; when
    the keychain cannot be used here the message says so and points to the environment variable.
    Raises :class:`ApiKeyFormatError` (a subclass) when the first value found cannot be a key.
    """
    service = key_service(backend)
    for name in service.env:
        value = os.environ.get(name, "")
        if value.strip():
            key = check_api_key(value, name, backend)
            logger.debug("Using the %s API key from %s", service.label, name)
            return ApiKey(key, name)
    try:
        stored = _read_keychain(service.keyring_user)
    except _KeychainUnavailable as exc:
        raise ApiKeyMissingError(_missing_message_without_keychain(service, str(exc))) from None
    if stored.strip():
        add_secret(stored)
        key = check_api_key(stored, KEYCHAIN_SOURCE, backend)
        logger.debug("Using the %s API key from the OS keychain", service.label)
        return ApiKey(key, KEYCHAIN_SOURCE)
    raise ApiKeyMissingError(
        f"No {service.label} API key found. Create one at {service.where}, then save it with "
        f"`{_set_command(backend)}` or set the {service.env[-1]} environment variable."
    )


def find_optional_api_key(backend: str) -> ApiKey | None:
    """Like :func:`find_api_key`, but None when no key is found (a local OpenAI-compatible
    server needs none) or the backend takes no key; a key that cannot be one still raises
    :class:`ApiKeyFormatError`."""
    if backend not in KEY_SERVICES:
        return None
    try:
        return find_api_key(backend)
    except ApiKeyFormatError:
        raise
    except ApiKeyMissingError:
        return None


def _missing_message_without_keychain(service: KeyService, reason: str) -> str:
    return (
        f"No {service.label} API key found, and the OS keychain is not available here "
        f"({reason}), so a saved key cannot be used. Create a key at {service.where} and set "
        f"the {service.env[-1]} environment variable."
    )


def keychain_available() -> bool:
    """True when ``keyring`` has a usable backend (not the fail or null backend)."""
    try:
        _usable_backend()
    except _KeychainUnavailable:
        return False
    return True


def store_api_key(value: str, backend: str = "gemini") -> None:
    """Save ``value`` (surrounding whitespace stripped) in the OS keychain as ``backend``'s key.

    Raises :class:`InputError` for a blank value, :class:`ApiKeyFormatError` for a value that
    cannot be an API key (exit 3; nothing is stored), and :class:`LoraCapError` when the
    keychain is not available or refuses the write (the message suggests the environment
    variable instead).
    """
    service = key_service(backend)
    if not value.strip():
        raise InputError(f"The API key is empty. Paste the key from {service.where}.")
    key = check_api_key(value, None, backend)
    add_secret(key)
    try:
        keychain = _usable_backend()
        keychain.set_password(KEYRING_SERVICE, service.keyring_user, key)
    except _KeychainUnavailable as exc:
        raise LoraCapError(_no_keychain_message("save", str(exc), service)) from None
    except Exception as exc:  # noqa: BLE001 -- any backend failure means "cannot save here"
        raise LoraCapError(_no_keychain_message("save", type(exc).__name__, service)) from None
    logger.info("Saved the %s API key in the OS keychain", service.label)


def delete_api_key(backend: str = "gemini") -> bool:
    """Remove ``backend``'s saved key from the OS keychain; True if one was removed, False if
    none was.

    Raises :class:`LoraCapError` when the keychain is not available or refuses the change.
    """
    service = key_service(backend)
    try:
        keychain = _usable_backend()
        if keychain.get_password(KEYRING_SERVICE, service.keyring_user) is None:
            return False
        keychain.delete_password(KEYRING_SERVICE, service.keyring_user)
    except PasswordDeleteError:
        return False
    except _KeychainUnavailable as exc:
        raise LoraCapError(_no_keychain_message("delete", str(exc), service)) from None
    except Exception as exc:  # noqa: BLE001 -- any backend failure means "cannot delete here"
        raise LoraCapError(_no_keychain_message("delete", type(exc).__name__, service)) from None
    logger.info("Deleted the %s API key from the OS keychain", service.label)
    return True


def _no_keychain_message(action: str, reason: str, service: KeyService) -> str:
    return (
        f"Cannot {action} the API key: the OS keychain is not available here ({reason}). "
        f"Set the {service.env[-1]} environment variable instead."
    )


def _usable_backend() -> KeyringBackend:
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 -- a broken keyring setup must not crash LoRACap
        raise _KeychainUnavailable(f"keyring failed to load: {type(exc).__name__}") from None
    if isinstance(backend, (keyring.backends.fail.Keyring, keyring.backends.null.Keyring)):
        raise _KeychainUnavailable("no keyring backend is installed or running")
    return backend


def _read_keychain(user: str = KEYRING_USERNAME) -> str:
    """The key stored for ``user`` as it is (not checked), or ``""``; raises
    _KeychainUnavailable."""
    backend = _usable_backend()
    try:
        stored = backend.get_password(KEYRING_SERVICE, user)
    except Exception as exc:  # noqa: BLE001 -- locked or broken keychain: report, do not crash
        raise _KeychainUnavailable(f"reading it failed: {type(exc).__name__}") from None
    return stored or ""
