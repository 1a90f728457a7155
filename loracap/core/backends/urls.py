"""The rules of a captioning server's address: how a base URL is checked and tidied
(:func:`check_base_url`) and how it is shown in messages (:func:`display_url`). In a module that
imports nothing heavy, for the checks of a project file (:mod:`loracap.core.project_integrity`);
:mod:`loracap.core.backends.base` re-exports both.
"""

from __future__ import annotations


def display_url(url: str) -> str:
    """``url`` without a user name or password, a query or a fragment, and without a trailing
    ``/``: how a server's address is shown in messages (credentials never are)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


def check_base_url(url: str, backend: str = "", *, env_variable: str = "",
                   example: str = "http://localhost:11434/v1") -> str:
    """``url`` without surrounding whitespace or a trailing ``/`` when it can be a server's base
    URL (``http``/``https`` with a host, no spaces or control characters, at most 2,000
    characters), ``""`` for ``""`` (the backend's default). Raises
    :class:`~loracap.core.errors.InputError` saying what is wrong and how to set it (``--base-url``
    or ``env_variable``), e.g. for ``localhost:11434`` (no scheme)."""
    from urllib.parse import urlsplit

    from loracap.core.errors import InputError

    text = url.strip()
    if not text:
        return ""
    who = f" of the {backend} backend" if backend else ""
    fix = f"for example {example}; set it with --base-url" + (
        f" or {env_variable}" if env_variable else "")
    if len(text) > 2000 or any(not ch.isprintable() or ch.isspace() for ch in text):
        raise InputError(f"The server URL{who} holds spaces or control characters; give it "
                         f"as one address, {fix}.")
    shown = text[:200]
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError as exc:
        raise InputError(f"The server URL{who} '{shown}' cannot be read ({exc}); {fix}.") \
            from None
    if parts.scheme not in ("http", "https") or not host:
        raise InputError(f"The server URL{who} '{shown}' is not an http:// or https:// address "
                         f"with a host name; {fix}.")
    return text.rstrip("/")


__all__ = ["check_base_url", "display_url"]
