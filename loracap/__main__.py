"""Entry point of ``loracap`` and ``python -m loracap``.

``loracap`` opens the window; ``loracap FOLDER`` opens the New Project dialog for that folder;
``loracap PROJECT.loraproj`` opens the project; ``loracap COMMAND ...`` runs a headless command
(``loracap --help``).
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
    if not args or (len(args) == 1 and args[0] not in COMMANDS and not args[0].startswith("-")):
        from loracap.ui.app import run_gui

        return run_gui(Path(args[0]) if args else None)
    from loracap.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
