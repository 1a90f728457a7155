"""Prove the packaged app's other backends work: the frozen ``loracap`` lists models and captions a
small project through the bundled ``openai`` and ``anthropic`` SDKs, against the tests' fake
servers on 127.0.0.1 (no network), submits and fetches a Gemini batch job (the batch modules are
imported by name), and names the wd14 extra when WD14 is chosen.

Usage: ``python build_scripts/frozen_backends.py dist/LoRACap`` (from the repository root, with
the test dependencies installed). Exit 0 when every check passes; each failure is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.anthropic_server import DEFAULT_KEY, FakeAnthropicServer  # noqa: E402
from tests.fakes.gemini_batch_server import FakeGeminiBatchServer  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.fakes.photos import make_photo_folder  # noqa: E402


def main(bundle: Path) -> int:
    exe = bundle / ("loracap.exe" if os.name == "nt" else "loracap")
    home = Path(tempfile.mkdtemp(prefix="loracap-frozen-home-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_"))}
    env.update({"QT_QPA_PLATFORM": "offscreen", "LORACAP_HOME": str(home)})
    failures: list[str] = []

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), *args], env={**env, **(extra or {})},
                              capture_output=True, text=True, timeout=300)

    def check(name: str, ok: bool, result: subprocess.CompletedProcess[str]) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        if not ok:
            failures.append(name)
            print(f"  exit {result.returncode}\n  stdout: {result.stdout[-800:]}\n"
                  f"  stderr: {result.stderr[-800:]}")

    folder = home / "photos"
    make_photo_folder(folder, 2, size=(320, 240))
    made = run("new", str(folder), "--trigger", "frozen_test")
    check("new", made.returncode == 0, made)
    project = str(folder / "frozen_test.loraproj")
    with FakeOpenAIServer(models=["qwen2.5vl:7b"]) as server:
        listed = run("models", "--backend", "openai", "--base-url", server.base_url)
        check("openai models", listed.stdout.split() == ["qwen2.5vl:7b"], listed)
        done = run("caption", project, "--backend", "openai", "--base-url", server.base_url)
        check("openai caption", done.returncode == 0 and len(done.stdout.splitlines()) == 2,
              done)
    with FakeAnthropicServer() as server:
        done = run("caption", project, "--backend", "anthropic", "--only", "all",
                   extra={"ANTHROPIC_BASE_URL": server.base_url,
                          "ANTHROPIC_API_KEY": DEFAULT_KEY})
        check("anthropic caption", done.returncode == 0 and len(done.stdout.splitlines()) == 2,
              done)
    with FakeGeminiBatchServer("frozen-key") as server:
        gemini = {"GOOGLE_GEMINI_BASE_URL": server.base_url, "GEMINI_API_KEY": "frozen-key"}
        sent = run("caption", project, "--backend", "gemini", "--only", "all", "--batch",
                   extra=gemini)
        check("gemini batch submit", sent.returncode == 0 and len(server.jobs) == 1, sent)
        if server.jobs:
            server.finish()
        fetched = run("batch", "fetch", project, extra=gemini)
        check("gemini batch fetch",
              fetched.returncode == 0 and len(fetched.stdout.splitlines()) == 2, fetched)
    info = run("info", "--json", project)  # read without SQLAlchemy: its own imports
    try:
        counts = json.loads(info.stdout)
    except ValueError:
        counts = {}
    check("info", info.returncode == 0 and counts.get("images") == 2
          and counts.get("captioned") == 2 and bool(counts.get("usage")), info)
    tagger = run("caption", project, "--backend", "wd14", "--only", "all")
    check("wd14 says it is not in the packaged app",
          tagger.returncode == 1 and "packaged app does not include" in tagger.stderr
          and "Traceback" not in tagger.stderr, tagger)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1])))
