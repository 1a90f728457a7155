"""Which servers may receive your API keys when the address comes from a project file.

A project stores its backend's base URL, so a project someone sends you could point the captioning
requests -- and the key you saved for that backend -- at any server. A key is therefore sent to a
base URL read from a project only when that server is one you chose yourself:

* the service's own endpoint (``api.openai.com``, ``api.anthropic.com``, Google's), or a server on
  this machine (``localhost``, ``127.0.0.1``, ``::1``), or
* a base URL you gave yourself -- ``--base-url`` on the command line, File > Settings… in the
  window, or the backend's environment variable -- which is remembered per backend in
  ``trusted_servers.json`` in the settings folder (:func:`trust_server`).

Otherwise :class:`UntrustedServerError` (exit 2) says which server the project names and how to
allow it. A request without a key (a local server that needs none) is never held back.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from loracap.core.errors import InputError

log = logging.getLogger(__name__)

#: File name of the trusted servers in the settings folder.
TRUSTED_FILE = "trusted_servers.json"

#: Each backend's own API host (its SDK's default endpoint).
OWN_HOSTS: dict[str, frozenset[str]] = {
    "gemini": frozenset({"generativelanguage.googleapis.com"}),
    "openai": frozenset({"api.openai.com"}),
    "anthropic": frozenset({"api.anthropic.com"}),
}

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class UntrustedServerError(InputError):
    """A project names a server that has not been chosen by the user, and a key would go there."""


def _path() -> Path:
    from loracap.core.userdirs import user_dirs

    return user_dirs().settings / TRUSTED_FILE


def _normal(url: str) -> str:
    return url.strip().rstrip("/").lower()


def _load(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("Ignoring %s: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): [str(u) for u in v if isinstance(u, str)]
            for k, v in data.items() if isinstance(v, list)}


def is_trusted(backend: str, url: str, *, path: Path | None = None) -> bool:
    """True when a key of ``backend`` may go to the base URL ``url`` (rules in the module
    docstring); True for ``""`` (the service's default)."""
    if not url.strip():
        return True
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return False
    if host in _LOOPBACK or host in OWN_HOSTS.get(backend, frozenset()):
        return True
    trusted = _load(path or _path()).get(backend, [])
    return _normal(url) in {_normal(item) for item in trusted}


def trust_server(backend: str, url: str, *, path: Path | None = None) -> None:
    """Remember that the user chose ``url`` for ``backend`` (written atomically; a failure to
    write is logged, never raised: the batch the user asked for goes on)."""
    if not url.strip() or is_trusted(backend, url, path=path):
        return
    path = path or _path()
    data = _load(path)
    data.setdefault(backend, []).append(url.strip().rstrip("/"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".trusted-", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
        os.replace(temp, path)
    except OSError as exc:
        log.warning("Could not remember the server %s in %s: %s", url, path, exc)


def check_project_server(backend: str, url: str, label: str, *, path: Path | None = None
                         ) -> None:
    """Raise :class:`UntrustedServerError` unless a ``backend`` key may go to ``url``, a base URL
    read from a project file; ``label`` names the key ("OpenAI-compatible server")."""
    if is_trusted(backend, url, path=path):
        return
    raise UntrustedServerError(
        f"This project sends its captioning requests to {url}, with your {label} API key. If "
        f"you trust that server, give it once yourself: --base-url {url} (or File > Settings… "
        "in the window); otherwise choose another server with --base-url.")
