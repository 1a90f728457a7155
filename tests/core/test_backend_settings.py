"""A project's backend settings (format 5), token usage, keys per backend, prices and estimates."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from loracap.core import project as project_mod
from loracap.core.backends.base import (
    BackendConfig,
    TokenUsage,
    check_base_url,
    parse_retry_after,
    status_error,
)
from loracap.core.backends.registry import backend_info, batch_defaults, resolve_config
from loracap.core.errors import (
    ApiKeyMissingError,
    AuthenticationError,
    CaptionError,
    ImageRejectedError,
    InputError,
    ProjectError,
    QuotaExhaustedError,
    TransientError,
)
from loracap.core.estimate import ASSUMED_OUTPUT_TOKENS, estimate_batch, image_tokens
from loracap.core.keys import ApiKeyFormatError, delete_api_key, find_api_key, store_api_key
from loracap.core.presets import presets_from_json
from loracap.core.pricing import BUILTIN_PRICES, Price, load_prices, parse_price_table
from loracap.core.project import Project
from tests.core.test_project import ids_by_path, make_dataset, make_version_4, new_project
from tests.fakes.memory_keyring import MemoryKeyring


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path)


# --- the project's settings ---------------------------------------------------------------------


def test_a_new_project_has_gemini_english_and_no_options(dataset: Path) -> None:
    with new_project(dataset) as project:
        settings = project.settings
    assert (settings.backend, settings.base_url, settings.language) == ("gemini", "", "en")
    assert settings.backend_options == {} and presets_from_json(settings.prompt_presets) == []


def test_backend_settings_are_checked_stored_and_merged(dataset: Path) -> None:
    with Project.create(dataset / "p.loraproj", trigger="hall", backend="openai",
                        base_url="http://localhost:11434/v1/", language="de",
                        model="llava") as project:
        assert project.settings.base_url == "http://localhost:11434/v1"
        project.update_backend_options("openai", structured_output=False)
        project.update_backend_options("wd14", general_threshold=0.4)
        project.update_backend_options("openai", note="x")
        for bad in ({"backend": "dalle"}, {"base_url": "localhost:11434"},
                    {"language": "klingon"}, {"backend_options": "[1, 2]"},
                    {"prompt_presets": "{not json"}):
            with pytest.raises(InputError):
                project.update_settings(**bad)
    with Project.open(dataset / "p.loraproj", read_only=True) as project:
        settings = project.settings
    assert (settings.backend, settings.model, settings.language) == ("openai", "llava", "de")
    assert settings.options_for("openai") == {"structured_output": False, "note": "x"}
    assert settings.options_for("wd14") == {"general_threshold": 0.4}
    assert settings.options_for("anthropic") == {}


@pytest.mark.parametrize(("column", "value", "message"), [
    ("backend", "dalle", "captioning backend"),
    ("language", "xx-evil", "caption language"),
    ("base_url", "file:///etc/passwd", "base_url"),
    ("backend_options", '{"openai": 3}', "backend_options"),
    ("prompt_presets", '"nope"', "prompt_presets"),
])
def test_a_project_with_a_bad_backend_setting_is_refused_on_open(
        dataset: Path, column: str, value: str, message: str) -> None:
    with new_project(dataset):
        pass
    path = dataset / "hall.loraproj"
    conn = sqlite3.connect(path)
    conn.execute(f"UPDATE project SET {column} = ?", (value,))
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError, match=f"damaged: .*{message}"):
        Project.open(path, read_only=True)


def test_a_version_4_project_is_backed_up_and_gains_backend_settings(dataset: Path) -> None:
    with new_project(dataset) as project:
        image_id = ids_by_path(project)["IMG_0002.jpg"]
        project.store_generated(image_id, "a hall", backend="gemini", model="m", prompt="p")
    path = dataset / "hall.loraproj"
    make_version_4(path)
    with Project.open(path) as project:
        assert project.settings.backend == "gemini"
        assert project.token_usage()[0].input_tokens == 0
        project.update_settings(language="ja")
    assert (dataset / "hall.v4-backup.loraproj").is_file()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == project_mod.SCHEMA_VERSION == 8
    conn.close()


# --- token usage ----------------------------------------------------------------------------------


def test_every_answer_received_counts_its_tokens_kept_or_not(dataset: Path) -> None:
    with new_project(dataset) as project:
        ids = ids_by_path(project)
        first, imported = ids["IMG_0001.jpg"], ids["IMG_0002.jpg"]
        assert project.store_generated(first, "a hall", backend="gemini", model="flash",
                                       prompt="p", usage=TokenUsage(1000, 50))
        # A person's caption is kept; the answer was paid for all the same.
        assert not project.store_generated(imported, "a hall", backend="gemini", model="flash",
                                           prompt="p", usage=TokenUsage(900, 40))
        project.store_generated(first, "tags", backend="wd14", model="wd-vit-tagger-v3",
                                prompt="", usage=TokenUsage())
        project.record_failure(first, "blocked", kind="rejected", backend="gemini",
                               model="flash")
        usage = project.token_usage()
        history = project.history(first)
    assert [(u.backend, u.model, u.answers, u.input_tokens, u.output_tokens) for u in usage] == [
        ("gemini", "flash", 2, 1900, 90), ("wd14", "wd-vit-tagger-v3", 1, 0, 0)]
    conn = sqlite3.connect(dataset / "hall.loraproj")
    tokens = conn.execute("SELECT input_tokens, output_tokens FROM caption_versions "
                          "WHERE backend = 'gemini' ORDER BY id").fetchall()
    conn.close()
    assert tokens == [(1000, 50), (900, 40)]
    assert history


# --- keys per backend -------------------------------------------------------------------------


@pytest.fixture
def keychain() -> Iterator[MemoryKeyring]:
    import keyring

    previous = keyring.get_keyring()
    MemoryKeyring.store.clear()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    yield memory
    keyring.set_keyring(previous)
    MemoryKeyring.store.clear()


def test_each_backend_has_its_own_key(keychain: MemoryKeyring,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    store_api_key("sk-openai-1", "openai")
    store_api_key("sk-ant-1", "anthropic")
    assert find_api_key("openai").value == "sk-openai-1"
    assert find_api_key("anthropic").value == "sk-ant-1"
    with pytest.raises(ApiKeyMissingError, match="No Gemini API key"):
        find_api_key("gemini")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-env")
    assert find_api_key("anthropic").source == "ANTHROPIC_API_KEY"
    assert delete_api_key("openai") and not delete_api_key("openai")
    with pytest.raises(ApiKeyMissingError, match="loracap key set --backend openai"):
        find_api_key("openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-with\nnewline")
    with pytest.raises(ApiKeyFormatError, match="OPENAI_API_KEY contains a line break"):
        find_api_key("openai")
    with pytest.raises(InputError, match="takes no API key"):
        find_api_key("wd14")


def test_the_configuration_of_a_batch(dataset: Path, keychain: MemoryKeyring,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "g-key")
    with Project.create(dataset / "p.loraproj", trigger="hall", model="gemini-2.5-flash",
                        language="fr") as project:
        settings = project.settings
    config = resolve_config(settings, timeout_s=12)
    assert (config.backend, config.model, config.api_key, config.timeout_s) == (
        "gemini", "gemini-2.5-flash", "g-key", 12)
    # Another backend: not the project's model; a local server needs no key.
    local = resolve_config(settings, backend="openai", base_url="http://localhost:1234/v1")
    assert (local.model, local.api_key, local.base_url) == ("", "", "http://localhost:1234/v1")
    assert batch_defaults(local) == (1, 0)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    assert resolve_config(settings, backend="openai").base_url == "http://127.0.0.1:8000/v1"
    with pytest.raises(ApiKeyMissingError):
        resolve_config(settings, backend="anthropic")
    assert resolve_config(settings, backend="anthropic", need_key=False).api_key == ""
    tagger = resolve_config(settings, backend="wd14")
    assert tagger.model == backend_info("wd14").default_model and tagger.api_key == ""
    assert batch_defaults(tagger) == (1, 0)
    assert batch_defaults(config) == (4, 10)
    with pytest.raises(InputError, match="not an http"):
        resolve_config(settings, backend="openai", base_url="localhost:11434")


# --- the shared error rules ---------------------------------------------------------------------


def test_retry_after_in_seconds_milliseconds_and_dates() -> None:
    assert parse_retry_after({"Retry-After": "7"}) == 7
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
                             now=1445412470.0) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Retry-After": "-3"}) is None
    assert parse_retry_after({"Retry-After": "inf"}) is None
    assert parse_retry_after({"Retry-After": "99999"}) == 3600
    assert parse_retry_after(None) is None


def test_one_set_of_status_rules_for_every_service() -> None:
    limited = status_error("S", 429, "429", model="m", retry_after=3)
    assert isinstance(limited, TransientError) and limited.kind == "rate_limit"
    assert limited.retry_after == 3
    assert isinstance(status_error("S", 429, "x", model="m", quota_used_up=True),
                      QuotaExhaustedError)
    for code in (401, 403):
        assert isinstance(status_error("S", code, "x", model="m"), AuthenticationError)
    for code in (500, 502, 503, 504, 529, 408):
        error = status_error("S", code, "x", model="m")
        assert isinstance(error, TransientError) and error.kind == "server"
    unknown = status_error("S", 404, "x", model="llava", model_advice="Pick one.")
    assert type(unknown) is CaptionError and "'llava'" in str(unknown)
    assert str(unknown).endswith("Pick one.")
    assert isinstance(status_error("S", 400, "x", model="m"), ImageRejectedError)
    assert type(status_error("S", 413, "x", model="m")) is CaptionError


@pytest.mark.parametrize("url", ["localhost:11434", "ftp://host/v1", "http://", "http://a b",
                                 "http://host\n/v1"])
def test_base_urls_that_cannot_be_servers(url: str) -> None:
    with pytest.raises(InputError):
        check_base_url(url)


def test_base_urls_are_tidied() -> None:
    assert check_base_url("  https://openrouter.ai/api/v1/ ") == "https://openrouter.ai/api/v1"
    assert check_base_url("") == ""


# --- prices and estimates -------------------------------------------------------------------------


def test_the_users_prices_override_the_built_in_ones(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    assert load_prices(path) is BUILTIN_PRICES
    path.write_text(json.dumps({"as_of": "2026-11-01", "source": "invoice", "prices": {
        "openai/*": {"input": 0, "output": 0}, "gemini/gemini-flash-latest":
        {"input": 0.5, "output": 3}}}))
    table = load_prices(path)
    assert (table.as_of, table.source) == ("2026-11-01", "invoice")
    assert table.price("gemini", "gemini-flash-latest") == Price(0.5, 3)
    assert table.price("openai", "llava:13b") == Price(0, 0)
    assert table.price("anthropic", "claude-haiku-4-5") == Price(1.0, 5.0)
    assert table.cost("anthropic", "claude-unknown", 10, 10) is None
    assert table.cost("gemini", "gemini-flash-latest", 1_000_000, 100_000) == pytest.approx(0.8)
    path.write_text('{"prices": {"gemini/x": {"input": -1, "output": 2}}}')
    assert load_prices(path) is BUILTIN_PRICES  # ignored, with a warning
    for bad in ("[]", '{"prices": {"nokey": {"input": 1, "output": 1}}}',
                '{"prices": {"a/b": {"input": "1", "output": 1}}}'):
        with pytest.raises(InputError):
            parse_price_table(bad)


def test_image_tokens_follow_each_services_rules() -> None:
    # Gemini: up to 384 px both sides is one 258-token image; else tiles of min(w, h) / 1.5.
    assert image_tokens("gemini", 384, 300, 1536) == 258
    assert image_tokens("gemini", 1024, 768, 1536) == 258 * 2 * 2  # tile 512
    assert image_tokens("gemini", 4000, 3000, 1536) == 258 * 2 * 2  # sent as 1536 x 1152 -> 768
    # Claude: w * h / 750 after the long side is at most 1568, at most 1600.
    assert image_tokens("anthropic", 1000, 750, 1536) == 1000
    assert image_tokens("anthropic", 6000, 4000, 6000) == 1600
    # OpenAI: fit 2048, short side 768, 85 + 170 per 512 tile.
    assert image_tokens("openai", 1024, 1024, 1536) == 85 + 170 * 4
    assert image_tokens("wd14", 1024, 1024, 1536) == 0
    assert image_tokens("gemini", 0, 0, 1536) == 0


def test_an_estimate_counts_requests_tokens_and_cost() -> None:
    sizes = [(1024, 768)] * 10
    estimate = estimate_batch("gemini", "gemini-flash-latest", sizes, max_side=1536,
                              prompt="x" * 400, prices=BUILTIN_PRICES)
    assert estimate.requests == 10
    assert estimate.input_tokens == 10 * (1032 + 100)
    assert estimate.output_tokens == 10 * ASSUMED_OUTPUT_TOKENS and estimate.output_assumed
    assert estimate.cost == pytest.approx((11320 * 0.30 + 1000 * 2.50) / 1e6)
    known = estimate_batch("gemini", "gemini-flash-latest", sizes, max_side=1536, prompt="",
                           prices=BUILTIN_PRICES, mean_output_tokens=42.4)
    assert known.output_tokens == 424 and not known.output_assumed
    local = estimate_batch("wd14", "wd-vit-tagger-v3", sizes, max_side=1536, prompt="p",
                           prices=BUILTIN_PRICES)
    assert (local.input_tokens, local.output_tokens, local.cost) == (0, 0, 0)
    unpriced = estimate_batch("openai", "llava", sizes, max_side=1536, prompt="",
                              prices=BUILTIN_PRICES)
    assert unpriced.cost is None


def test_backend_config_hides_the_key() -> None:
    assert "secret" not in repr(BackendConfig("gemini", "m", api_key="secret"))


# --- where a key may go --------------------------------------------------------------------------


def test_a_key_goes_to_a_projects_server_only_when_the_user_chose_it(
        dataset: Path, keychain: MemoryKeyring, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    from loracap.core.trusted_servers import (
        UntrustedServerError,
        is_trusted,
        trust_server,
    )

    trusted = tmp_path / "trusted.json"
    monkeypatch.setattr("loracap.core.trusted_servers._path", lambda: trusted)
    monkeypatch.setenv("GEMINI_API_KEY", "g-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-mine")
    with Project.create(dataset / "p.loraproj", trigger="hall",
                        base_url="https://collector.example/v1beta") as project:
        settings = project.settings
        # A crafted project: Gemini requests, with the user's Gemini key, to another host.
        with pytest.raises(UntrustedServerError, match="collector.example.*--base-url"):
            resolve_config(settings)
        # Named by the user for this batch: allowed.
        assert resolve_config(settings, base_url="https://collector.example/v1beta").api_key
        trust_server("gemini", "https://collector.example/v1beta/")
        assert resolve_config(settings).base_url == "https://collector.example/v1beta"
        # Trusted for that backend only.
        assert not is_trusted("openai", "https://collector.example/v1beta")
        project.update_settings(backend="openai", base_url="https://proxy.example/v1")
        with pytest.raises(UntrustedServerError, match="OpenAI-compatible server API key"):
            resolve_config(project.settings)
        # A local server, the service's own host and a request without a key are never held.
        for url in ("http://localhost:11434/v1", "http://127.0.0.1:8000/v1",
                    "https://api.openai.com/v1"):
            project.update_settings(base_url=url)
            assert resolve_config(project.settings).api_key == "sk-mine"
        project.update_settings(base_url="https://proxy.example/v1")
        monkeypatch.delenv("OPENAI_API_KEY")
        assert resolve_config(project.settings).api_key == ""
    assert json.loads(trusted.read_text()) == {"gemini": ["https://collector.example/v1beta"]}


def test_another_backends_last_model_is_used_again(dataset: Path) -> None:
    from loracap.core.backends.registry import options_to_keep

    class Used:
        model = "llava:13b"

    with Project.create(dataset / "p.loraproj", trigger="hall") as project:
        settings = project.settings
        config = resolve_config(settings, backend="openai", base_url="http://localhost:1/v1")
        assert config.model == ""  # nothing used yet: the server's own
        assert options_to_keep(Used(), config, settings, answered=False) == {}
        keep = options_to_keep(Used(), config, settings, answered=True)
        assert keep == {"model": "llava:13b"}
        project.update_backend_options("openai", **keep)
        again = resolve_config(project.settings, backend="openai",
                               base_url="http://localhost:1/v1")
        assert again.model == "llava:13b"
        # The project's own backend keeps its model in the settings, not in the options.
        own = resolve_config(project.settings, need_key=False)
        assert options_to_keep(Used(), own, project.settings, answered=True) == {}


def test_multi_person_estimates_count_every_request() -> None:
    from loracap.core.estimate import people_requests

    assert people_requests("natural", local_detector=False, mean_people=None) == 4.0
    assert people_requests("natural", local_detector=True, mean_people=3.0) == 4.0
    assert people_requests("tags", local_detector=False, mean_people=5.0) == 1.0
    sizes = [(1024, 768)] * 10
    one = estimate_batch("gemini", "gemini-flash-latest", sizes, max_side=1536, prompt="",
                         prices=BUILTIN_PRICES)
    four = estimate_batch("gemini", "gemini-flash-latest", sizes, max_side=1536, prompt="",
                          prices=BUILTIN_PRICES, requests_per_image=4.0)
    assert four.requests == 40 and four.input_tokens == 4 * one.input_tokens
    assert four.output_tokens == 4 * one.output_tokens
