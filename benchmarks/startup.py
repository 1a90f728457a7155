"""Time from launching LoRACap to its main window shown.

Starts the app (``python -m loracap`` by default, or a built executable given with ``--exe``)
with ``LORACAP_STARTUP_TIMING=1``: the app prints the time of the first event-loop turn after
its window is shown, and quits; the difference to the launch is the figure. Runs it several
times and prints the figures (the first run includes a cold disk cache).

Usage::

    python benchmarks/startup.py                       # from source
    python benchmarks/startup.py --exe dist/LoRACap/loracap
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exe", help="a built LoRACap executable (default: python -m loracap)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    command = [args.exe] if args.exe else [sys.executable, "-m", "loracap"]
    env = dict(os.environ, LORACAP_STARTUP_TIMING="1")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    times = []
    with tempfile.TemporaryDirectory() as home:
        env["LORACAP_HOME"] = home
        for _ in range(args.runs):
            launched = time.time()
            out = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                                 timeout=120)
            line = next((ln for ln in out.stdout.splitlines()
                         if ln.startswith("window-shown ")), "")
            if not line:
                print(f"no timing printed (exit {out.returncode}): {out.stderr.strip()}")
                return 1
            times.append(float(line.split()[1]) - launched)
    print(f"{' '.join(command)}: window shown after {', '.join(f'{t:.2f}' for t in times)} s")
    print(f"median {statistics.median(times):.2f} s, best {min(times):.2f} s "
          f"({env['QT_QPA_PLATFORM']} platform)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
