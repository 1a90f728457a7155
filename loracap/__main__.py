"""Entry point of ``loracap`` and ``python -m loracap``.

``loracap`` opens the window; ``loracap FOLDER`` opens the New Project dialog for that folder;
``loracap PROJECT.loraproj`` opens the project (an existing path); ``loracap COMMAND ...`` runs a
headless command (``loracap --help``), and any other word is a usage error (exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    """Run LoRACap: the window, or a headless command."""
    from loracap.cli import COMMANDS

    args = sys.argv[1:]
    if args == ["--self-test"]:  # hidden: proves a packaged build works (build_scripts/)
        from loracap.selftest import run_self_test

        return run_self_test()
    if args == ["--smoke-window"]:  # hidden: proves a packaged build opens its window (xcb)
        from loracap.ui.app import run_gui

        return run_gui(smoke_test=True)
    if not args or (len(args) == 1 and args[0] not in COMMANDS and not args[0].startswith("-")
                    and _exists(args[0])):
        from loracap.ui.app import run_gui

        return run_gui(Path(args[0]) if args else None)
    # Everything else is a command line, also a word that is neither a command nor an existing
    # path (`loracap help`): the CLI says so in one line (exit 2) instead of opening a window.
    from loracap.cli import main as cli_main

    return cli_main(args)


def _exists(arg: str) -> bool:
    """True when ``arg`` names an existing file or folder (``~`` expanded)."""
    try:
        return Path(arg).expanduser().exists()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, no home folder to expand
        return False


if __name__ == "__main__":
    sys.exit(main())
