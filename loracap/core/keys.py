"""Where the Gemini API key comes from: the environment, then the OS keychain.

Order: ``GOOGLE_API_KEY``, then ``GEMINI_API_KEY`` (the google-genai SDK's own precedence: it
prefers ``GOOGLE_API_KEY`` when both are set), then the OS keychain through ``keyring`` under
service ``"LoRACap"``, user ``"gemini-api-key"``. A key's value is never logged or printed
(every key read or saved is given to :func:`loracap.core.logs.add_secret`).
Keys are created at Google AI Studio: https://aistudio.google.com/apikey.

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


def check_api_key(value: str, source: str | None = None) -> str:
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
    fix = f"Copy the key from Google AI Studio ({AI_STUDIO_URL}) once more"
    if source is None:
        message = (f"This API key contains {problem}, which an API key never has (a bad "
                   f"paste?); nothing was stored. {fix} and save it.")
    elif source == KEYCHAIN_SOURCE:
        message = (f"The Gemini API key saved in the OS keychain contains {problem}, which an "
                   f"API key never has. {fix} and save it with `loracap key set` (or in "
                   "File > Settings… in the window).")
    else:
        message = (f"The Gemini API key in {source} contains {problem}, which an API key never "
                   f"has (a bad paste?). {fix} and set {source} to it.")
    raise ApiKeyFormatError(message)


class _KeychainUnavailable(Exception):
    """Internal: the keyring backend cannot be used; the message says why."""


def find_api_key() -> ApiKey:
    """The API key to use, from the first of ``GOOGLE_API_KEY``, ``GEMINI_API_KEY`` and the OS
    keychain that holds a non-blank value (surrounding whitespace removed).

    Raises :class:`ApiKeyMissingError` saying where to create a key and how to give it; when
    the keychain cannot be used here the message says so and points to the environment variable.
    Raises :class:`ApiKeyFormatError` (a subclass) when the first value found cannot be a key.
    """
    for name in ENV_VARIABLES:
        value = os.environ.get(name, "")
        if value.strip():
            key = check_api_key(value, name)
            logger.debug("Using the Gemini API key from %s", name)
            return ApiKey(key, name)
    try:
        stored = _read_keychain()
    except _KeychainUnavailable as exc:
        raise ApiKeyMissingError(_missing_message_without_keychain(str(exc))) from None
    if stored.strip():
        add_secret(stored)
        key = check_api_key(stored, KEYCHAIN_SOURCE)
        logger.debug("Using the Gemini API key from the OS keychain")
        return ApiKey(key, KEYCHAIN_SOURCE)
    raise ApiKeyMissingError(
        "No Gemini API key found. Create one at Google AI Studio "
        f"({AI_STUDIO_URL}), then save it with `loracap key set` or set the GEMINI_API_KEY "
        "environment variable."
    )


def _missing_message_without_keychain(reason: str) -> str:
    return (
        f"No Gemini API key found, and the OS keychain is not available here ({reason}), so "
        f"a saved key cannot be used. Create a key at Google AI Studio ({AI_STUDIO_URL}) and set "
        "the GEMINI_API_KEY environment variable."
    )


def keychain_available() -> bool:
    """True when ``keyring`` has a usable backend (not the fail or null backend)."""
    try:
        _usable_backend()
    except _KeychainUnavailable:
        return False
    return True


def store_api_key(value: str) -> None:
    """Save ``value`` (surrounding whitespace stripped) in the OS keychain.

    Raises :class:`InputError` for a blank value, :class:`ApiKeyFormatError` for a value that
    cannot be an API key (exit 3; nothing is stored), and :class:`LoraCapError` when the
    keychain is not available or refuses the write (the message suggests GEMINI_API_KEY
    instead).
    """
    if not value.strip():
        raise InputError("The API key is empty. Paste the key from Google AI Studio.")
    key = check_api_key(value)
    add_secret(key)
    try:
        backend = _usable_backend()
        backend.set_password(KEYRING_SERVICE, KEYRING_USERNAME, key)
    except _KeychainUnavailable as exc:
        raise LoraCapError(_no_keychain_message("save", str(exc))) from None
    except Exception as exc:  # noqa: BLE001 -- any backend failure means "cannot save here"
        raise LoraCapError(_no_keychain_message("save", type(exc).__name__)) from None
    logger.info("Saved the Gemini API key in the OS keychain")


def delete_api_key() -> bool:
    """Remove the saved key from the OS keychain; True if one was removed, False if none was.

    Raises :class:`LoraCapError` when the keychain is not available or refuses the change.
    """
    try:
        backend = _usable_backend()
        if backend.get_password(KEYRING_SERVICE, KEYRING_USERNAME) is None:
            return False
        backend.delete_password(KEYRING_SERVICE, KEYRING_USERNAME)
    except PasswordDeleteError:
        return False
    except _KeychainUnavailable as exc:
        raise LoraCapError(_no_keychain_message("delete", str(exc))) from None
    except Exception as exc:  # noqa: BLE001 -- any backend failure means "cannot delete here"
        raise LoraCapError(_no_keychain_message("delete", type(exc).__name__)) from None
    logger.info("Deleted the Gemini API key from the OS keychain")
    return True


def _no_keychain_message(action: str, reason: str) -> str:
    return (
        f"Cannot {action} the API key: the OS keychain is not available here ({reason}). "
        "Set the GEMINI_API_KEY environment variable instead."
    )


def _usable_backend() -> KeyringBackend:
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 -- a broken keyring setup must not crash LoRACap
        raise _KeychainUnavailable(f"keyring failed to load: {type(exc).__name__}") from None
    if isinstance(backend, (keyring.backends.fail.Keyring, keyring.backends.null.Keyring)):
        raise _KeychainUnavailable("no keyring backend is installed or running")
    return backend


def _read_keychain() -> str:
    """The stored key as it is (not checked), or ``""``; raises _KeychainUnavailable."""
    backend = _usable_backend()
    try:
        stored = backend.get_password(KEYRING_SERVICE, KEYRING_USERNAME)
    except Exception as exc:  # noqa: BLE001 -- locked or broken keychain: report, do not crash
        raise _KeychainUnavailable(f"reading it failed: {type(exc).__name__}") from None
    return stored or ""
