"""The command line with every backend, run as a user runs it (``python -m loracap``): an
OpenAI-compatible server, Claude, a WD14 tagger from a model folder, combined captions, the dry-run
estimate, the model list, the price table and the token count in ``info``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loracap.core.project import Project
from tests.fakes.anthropic_server import DEFAULT_KEY, FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer, OpenAIReply
from tests.fakes.photos import make_photo_folder

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
_CLEARED = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "OPENAI_API_KEY",
            "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")


def loracap(*args: str | Path, env: dict[str, str] | None = None,
            home: Path | None = None, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    full.update({"PYTHON_KEYRING_BACKEND": "tests.fakes.memory_keyring.MemoryKeyring",
                 "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)})
    if home is not None:
        full["LORACAP_HOME"] = str(home)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "loracap", *map(str, args)], cwd=REPO,
                          env=full, capture_output=True, text=True, timeout=120, input=stdin)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "studio"
    make_photo_folder(folder, 3, size=(800, 600))
    made = loracap("new", folder, "--trigger", "studio", "--language", "de")
    assert made.returncode == 0, made.stderr
    return folder / "studio.loraproj"


def test_an_ollama_style_server_captions_without_a_key_and_the_choice_is_kept(
        project: Path) -> None:
    with FakeOpenAIServer(models=["qwen2.5vl:7b"]) as server:
        done = loracap("caption", project, "--backend", "openai", "--base-url", server.base_url)
        chats = server.chat_requests
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3 and "Captioned 3 of 3" in done.stderr
    # The only model the server has was chosen; the German caption language was asked for.
    assert {chat.model for chat in chats} == {"qwen2.5vl:7b"}
    assert all("German" in chat.text for chat in chats)
    assert all(chat.parts == ("text", "image_url") for chat in chats)
    with Project.open(project, read_only=True) as opened:
        settings = opened.settings
        [usage] = opened.token_usage()
    assert settings.backend == "gemini"  # a batch's --backend is not the project's default
    assert (usage.backend, usage.model, usage.answers) == ("openai", "qwen2.5vl:7b", 3)
    info = loracap("info", project)
    assert "openai qwen2.5vl:7b: 3 answer(s)" in info.stdout, info.stdout
    data = json.loads(loracap("info", project, "--json").stdout)
    assert data["usage"][0]["answers"] == 3 and data["language"] == "de"


def test_a_server_without_structured_output_is_remembered(tmp_path: Path) -> None:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 2, size=(640, 480))
    with FakeOpenAIServer(models=["llava"]) as server:
        made = loracap("new", folder, "--trigger", "hall", "--backend", "openai",
                       "--base-url", server.base_url, "--model", "llava")
        assert made.returncode == 0, made.stderr
        server.accepts_response_format = False
        first = loracap("caption", folder / "hall.loraproj", "--workers", "1")
        asked = [chat.response_format is not None for chat in server.chat_requests]
        server.reset()
        server.models = ["llava"]
        again = loracap("caption", folder / "hall.loraproj", "--only", "all")
        asked_again = [chat.response_format is not None for chat in server.chat_requests]
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert asked[0] and not asked[-1]
    assert not any(asked_again)  # the project remembers
    with Project.open(folder / "hall.loraproj", read_only=True) as opened:
        assert opened.settings.options_for("openai") == {"structured_output": False}


def test_claude_with_its_key_from_the_keychain(project: Path, tmp_path: Path) -> None:
    with FakeAnthropicServer() as server:
        env = {"ANTHROPIC_BASE_URL": server.base_url}
        missing = loracap("caption", project, "--backend", "anthropic", env=env)
        # The key is given once on standard input, as `loracap key set` reads it without a
        # terminal; the in-memory keychain lives only in that process, so the variable is used.
        stored = loracap("key", "set", "--backend", "anthropic", stdin=DEFAULT_KEY + "\n")
        env["ANTHROPIC_API_KEY"] = DEFAULT_KEY
        done = loracap("caption", project, "--backend", "anthropic", env=env)
    assert missing.returncode == 3
    assert "No Claude API key found" in missing.stderr
    assert "loracap key set --backend anthropic" in missing.stderr
    assert stored.returncode == 0, stored.stderr
    assert done.returncode == 0, done.stderr
    assert "Captioned 3 of 3" in done.stderr


def test_unreachable_servers_and_models_without_vision_are_one_clear_line(
        project: Path) -> None:
    down = loracap("caption", project, "--backend", "openai", "--base-url",
                   "http://127.0.0.1:9/v1", "--model", "x", "--attempts", "2")
    assert down.returncode == 1
    assert "Cannot reach the captioning service" in down.stderr
    assert "Traceback" not in down.stderr
    with FakeOpenAIServer(models=["llama3.2:3b"]) as server:
        server.vision = False
        blind = loracap("caption", project, "--backend", "openai", "--base-url",
                        server.base_url)
    assert blind.returncode == 1
    assert "llama3.2:3b" in blind.stderr and "images" in blind.stderr
    assert "Traceback" not in blind.stderr
    bad_url = loracap("caption", project, "--backend", "openai", "--base-url", "localhost:1234")
    assert bad_url.returncode == 2 and "not an http:// or https:// address" in bad_url.stderr
    with Project.open(project, read_only=True) as opened:
        assert all(rec.caption is None and not rec.failed for rec in opened.images())


def test_a_wd14_tagger_from_a_model_folder(project: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from tests.fakes.tiny_tagger import write_tagger

    folder = write_tagger(tmp_path / "tiny")
    with Project.open(project) as opened:
        opened.update_backend_options("wd14", general_threshold=0.01,
                                      character_threshold=0.01)
    done = loracap("caption", project, "--backend", "wd14", "--model-dir", folder)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(", " in line for line in lines)
    (tmp_path / "empty").mkdir()
    broken = loracap("caption", project, "--backend", "wd14", "--model-dir", tmp_path / "empty",
                     "--only", "all")
    assert broken.returncode == 2 and "model.onnx" in broken.stderr
    (folder / "model.onnx").write_bytes(b"not a model")
    corrupt = loracap("caption", project, "--backend", "wd14", "--model-dir", folder,
                      "--only", "all")
    assert corrupt.returncode == 2, corrupt.stderr
    assert "WD14" in corrupt.stderr and "Traceback" not in corrupt.stderr
    with Project.open(project, read_only=True) as opened:  # nothing captioned was touched
        assert sum(rec.caption is not None for rec in opened.images()) == 3


def test_the_estimate_spends_nothing_and_needs_no_key(project: Path) -> None:
    with FakeOpenAIServer() as server:
        estimate = loracap("caption", project, "--estimate", "--backend", "openai",
                           "--base-url", server.base_url, "--model", "gpt-4.1-mini")
        sent = len(server.requests)
    assert estimate.returncode == 0, estimate.stderr
    assert sent == 0
    assert "requests: 3" in estimate.stdout and "cost: $" in estimate.stdout
    gemini = loracap("caption", project, "--estimate", "--json")
    data = json.loads(gemini.stdout)
    # 800 x 600: tiles of 400 px -> 2 x 2 tiles of 258 tokens, plus the prompt.
    assert data["requests"] == 3 and data["input_tokens"] > 3 * 1032
    assert data["output_assumed"] is True and data["cost_usd"] > 0


def test_models_and_prices(tmp_path: Path) -> None:
    with FakeOpenAIServer(models=["b-model", "a-model"]) as server:
        listed = loracap("models", "--backend", "openai", "--base-url", server.base_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["a-model", "b-model"]
    home = tmp_path / "home"
    (home / "settings").mkdir(parents=True)
    (home / "settings" / "prices.json").write_text(json.dumps(
        {"as_of": "2026-11-30", "source": "test", "prices": {"openai/a-model":
                                                             {"input": 1, "output": 2}}}))
    prices = loracap("prices", home=home)
    assert "as of 2026-11-30" in prices.stdout and "openai/a-model: 1 / 2" in prices.stdout
    tagger = loracap("models", "--backend", "wd14")
    assert "wd-eva02-large-tagger-v3" in tagger.stdout.splitlines()


def test_a_rate_limited_server_is_waited_for(project: Path) -> None:
    with FakeOpenAIServer(models=["m"]) as server:
        server.queue_replies(OpenAIReply.rate_limited("1"), route="chat")
        done = loracap("caption", project, "--backend", "openai", "--base-url",
                       server.base_url, "--workers", "1")
        count = len(server.chat_requests)
    assert done.returncode == 0, done.stderr
    assert count == 4 and "Captioned 3 of 3" in done.stderr


def test_a_project_cannot_send_the_key_to_a_server_the_user_did_not_choose(
        project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeOpenAIServer(models=["m"]) as server:
        with Project.open(project) as opened:  # as a crafted project would hold it
            opened.update_settings(backend="openai", base_url=server.base_url.replace(
                "127.0.0.1", "localhost.localdomain"), model="m")
        env = {"OPENAI_API_KEY": "sk-mine"}
        refused = loracap("caption", project, env=env, home=home)
        assert server.requests == []
    assert refused.returncode == 2
    assert "If you trust that server" in refused.stderr and "sk-mine" not in refused.stderr


def test_the_servers_only_model_becomes_the_projects(tmp_path: Path) -> None:
    folder = tmp_path / "room"
    make_photo_folder(folder, 1, size=(640, 480))
    with FakeOpenAIServer(models=["qwen2.5vl:7b"]) as server:
        made = loracap("new", folder, "--trigger", "room", "--backend", "openai", "--base-url",
                       server.base_url)
        estimate = loracap("caption", folder / "room.loraproj", "--estimate")
        done = loracap("caption", folder / "room.loraproj")
    assert made.returncode == 0 and done.returncode == 0, made.stderr + done.stderr
    assert "with openai (the server's model)" in estimate.stdout
    assert "cost: unknown (no price for openai" in estimate.stdout
    with Project.open(folder / "room.loraproj", read_only=True) as opened:
        assert (opened.settings.backend, opened.settings.model) == ("openai", "qwen2.5vl:7b")


def test_a_wrong_key_for_a_servers_model_list_is_exit_3(tmp_path: Path) -> None:
    folder = tmp_path / "room"
    make_photo_folder(folder, 1, size=(640, 480))
    with FakeOpenAIServer(api_key="right", models=["m"]) as server:
        made = loracap("new", folder, "--trigger", "room", "--backend", "openai",
                       "--base-url", server.base_url)
        assert made.returncode == 0, made.stderr
        wrong = loracap("caption", folder / "room.loraproj", env={"OPENAI_API_KEY": "wrong"})
    assert wrong.returncode == 3, wrong.stderr
    assert "refused the API key" in wrong.stderr and "Traceback" not in wrong.stderr
