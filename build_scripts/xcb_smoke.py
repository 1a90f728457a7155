"""Prove that the Linux bundle opens its real window under X11 with its own xcb libraries.

    python build_scripts/xcb_smoke.py [dist/LoRACap]

1. Starts Xvfb (a virtual X server, Debian package ``xvfb``) on a free display.
2. Hides the system's copies of the X11 client libraries the bundle must carry
   (``loracap.ui.platform_check.BUNDLED_X11_LIBRARIES``: libxcb-cursor, libxcb-icccm, ...,
   libxkbcommon-x11): in a private mount namespace (``unshare --mount``; as root, or else in an
   unprivileged user namespace) each system file is covered by a bind mount of ``/dev/null``,
   so loading it fails ("file too short"). Nothing changes outside that namespace.
3. Runs ``LoRACap/loracap --smoke-window`` in there with ``QT_QPA_PLATFORM=xcb``: the app shows
   its main window, waits until the X server has exposed it, checks in ``/proc/self/maps`` that
   its X11 libraries are the bundle's, prints one line and quits.

Passes (exit 0) when the app exits with 0, prints its one "window test passed" line and writes
nothing to stderr. A bundle without, say, ``libxcb-cursor.so.0`` fails step 3: Qt cannot load
its xcb plugin and aborts. Where no mount namespace can be made (a container without the
privilege), the script says so and runs step 3 without hiding; the app's own maps check still
fails when an X11 library comes from the system.
"""

from __future__ import annotations

import argparse
import glob
import os
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib",
                "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu")
TIMEOUT_S = 90

# Runs inside the namespace: cover each system copy, make sure it reads as empty, start the app.
_HIDE_AND_RUN = r"""
app=$1; shift
for f in "$@"; do mount --bind /dev/null "$f" || exit 97; done
for f in "$@"; do
  if [ -s "$f" ]; then echo "xcb_smoke: $f is still readable" >&2; exit 97; fi
done
exec "$app" --smoke-window
"""


def bundled_x11_libraries() -> frozenset[str]:
    sys.path.insert(0, str(ROOT))
    from loracap.ui.platform_check import BUNDLED_X11_LIBRARIES

    return BUNDLED_X11_LIBRARIES


def system_copies(sonames: frozenset[str]) -> list[str]:
    """The real files (symlinks resolved) of the system's copies of ``sonames``."""
    paths: set[str] = set()
    try:
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        cache = ""
    for line in cache.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.split(" ", 1)[0] in sonames and path:
            paths.add(os.path.realpath(path))
    for folder in LIBRARY_DIRS:
        for soname in sonames:
            for path in glob.glob(os.path.join(folder, soname + "*")):
                paths.add(os.path.realpath(path))
    return sorted(p for p in paths if os.path.isfile(p))


def namespace_command() -> tuple[list[str] | None, str]:
    """The ``unshare`` command that gives a private mount namespace here, and how it is made;
    ``(None, reason)`` when none can be made."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None, "unshare or mount (util-linux) is not installed"
    tries = (["unshare", "--mount", "--propagation", "private"],
             ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"])
    errors = []
    for command in tries:
        probe = subprocess.run([*command, "true"], capture_output=True, text=True)
        if probe.returncode == 0:
            return command, "root" if "--user" not in command else "a user namespace"
        errors.append(probe.stderr.strip() or f"exit {probe.returncode}")
    return None, "; ".join(errors)


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on a free display; return the process and the ``DISPLAY`` value."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise SystemExit("xcb_smoke: Xvfb is not installed (Debian/Ubuntu: apt install xvfb)")
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [xvfb, "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    number = b""
    while not number.endswith(b"\n"):
        ready, _, _ = select.select([read_end], [], [], 20)
        chunk = os.read(read_end, 16) if ready else b""
        if not chunk:
            process.kill()
            raise SystemExit("xcb_smoke: Xvfb did not start")
        number += chunk
    os.close(read_end)
    return process, f":{number.decode().strip()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=str(ROOT / "dist" / "LoRACap"),
                        help="the built one-folder app (default: dist/LoRACap)")
    args = parser.parse_args(argv)
    app = Path(args.folder).resolve() / "loracap"
    if not app.is_file():
        print(f"xcb_smoke: no app at {app}", file=sys.stderr)
        return 1

    hidden = system_copies(bundled_x11_libraries())
    unshare, how = namespace_command()
    if unshare is None:
        print(f"xcb_smoke: cannot make a mount namespace here ({how}); the system's copies of "
              "the X11 libraries stay visible, only the app's loaded-library check applies")
        command = [str(app), "--smoke-window"]
    elif hidden:
        print(f"xcb_smoke: hiding {len(hidden)} system copies of the bundle's X11 libraries "
              f"(mount namespace as {how})")
        command = [*unshare, "sh", "-c", _HIDE_AND_RUN, "sh", str(app), *hidden]
    else:
        print("xcb_smoke: this system has none of the bundle's X11 libraries; nothing to hide")
        command = [str(app), "--smoke-window"]

    xvfb, display = start_xvfb()
    try:
        with tempfile.TemporaryDirectory(prefix="loracap-xcb-smoke-") as home:
            env = {k: v for k, v in os.environ.items()
                   if k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "QT_QPA_PLATFORM")}
            env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", LORACAP_HOME=home)
            result = subprocess.run(command, env=env, capture_output=True, text=True,
                                    timeout=TIMEOUT_S)
    finally:
        xvfb.terminate()
        xvfb.wait(10)

    lines = result.stdout.splitlines()
    passed = (result.returncode == 0 and not result.stderr and len(lines) == 1
              and " window test passed: Qt xcb," in lines[0])
    print(result.stdout, end="")
    if not passed:
        print(f"xcb_smoke: FAILED (exit code {result.returncode})", file=sys.stderr)
        if result.stderr:
            print("stderr of the app:\n" + result.stderr[-4000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
