"""Entry point of ``loracap`` and ``python -m loracap``."""

from __future__ import annotations

import sys


def main() -> int:
    """Run LoRACap: the headless commands (``loracap --help``)."""
    from loracap.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
