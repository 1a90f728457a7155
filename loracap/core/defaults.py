"""Defaults shared by the command line and the window, in a module that imports nothing heavy
(the Gemini SDK takes about half a second to import; the window must not wait for it)."""

from __future__ import annotations

#: Gemini model used unless the user picks another: an alias that follows Google's current Flash
#: model, because fixed model names are retired (``gemini-2.0-flash`` was shut down in 2026).
DEFAULT_MODEL = "gemini-flash-latest"
