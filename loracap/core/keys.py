"""Where the Gemini API key comes from: the environment, then the OS keychain.

Order: ``GOOGLE_API_KEY``, then ``GEMINI_API_KEY`` (the google-genai SDK's own precedence: it
prefers ``GOOGLE_API_KEY`` when both are set), then the OS keychain through ``keyring`` under
service ``"LoRACap"``, user ``"gemini-api-key"``. A key's value is never logged or printed.
Keys are created at Google AI Studio: https://aistudio.google.com/apikey.
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


class _KeychainUnavailable(Exception):
    """Internal: the keyring backend cannot be used; the message says why."""


def find_api_key() -> ApiKey:
    """The API key to use, from the first of ``GOOGLE_API_KEY``, ``GEMINI_API_KEY`` and the OS
    keychain that holds a non-blank value (surrounding whitespace removed).

    Raises :class:`ApiKeyMissingError` saying where to create a key and how to give it; when
    the keychain cannot be used here the message says so and points to the environment variable.
    """
    for name in ENV_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            logger.debug("Using the Gemini API key from %s", name)
            return ApiKey(value, name)
    try:
        stored = _read_keychain()
    except _KeychainUnavailable as exc:
        raise ApiKeyMissingError(_missing_message_without_keychain(str(exc))) from None
    if stored:
        logger.debug("Using the Gemini API key from the OS keychain")
        return ApiKey(stored, KEYCHAIN_SOURCE)
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
    """Save ``value`` (whitespace stripped) in the OS keychain.

    Raises :class:`InputError` for a blank value and :class:`LoraCapError` when the keychain is
    not available or refuses the write (the message suggests GEMINI_API_KEY instead).
    """
    key = value.strip()
    if not key:
        raise InputError("The API key is empty. Paste the key from Google AI Studio.")
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
    """The stripped stored key, or ``""``; raises _KeychainUnavailable."""
    backend = _usable_backend()
    try:
        stored = backend.get_password(KEYRING_SERVICE, KEYRING_USERNAME)
    except Exception as exc:  # noqa: BLE001 -- locked or broken keychain: report, do not crash
        raise _KeychainUnavailable(f"reading it failed: {type(exc).__name__}") from None
    return (stored or "").strip()
