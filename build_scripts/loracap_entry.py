"""PyInstaller entry script: run ``loracap.__main__.main`` (a file outside the package, so the
package is analysed and imported as ``loracap``, never as loose top-level modules)."""

import sys

from loracap.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
