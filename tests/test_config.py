"""Where settings come from, in which order, and that the key never shows."""

import pickle

import pytest

from rp_notebook.config import (
    Secret,
    configure,
    current_settings,
    editing_overrides,
    local_hint,
    reset_configuration,
    use_local_hint,
)
from rp_notebook.errors import ConfigurationError, InputError

KEY = "fake_TESTKEY_0123456789abcdefghij"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (
        "RUNPOD_API_KEY",
        "RUNPOD_ENDPOINT_BASE_URL",
        "RUNPOD_API_BASE_URL",
        "RP_NOTEBOOK_TTS_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    reset_configuration()
    yield tmp_path
    reset_configuration()


def test_environment_beats_dotenv_which_beats_the_runpod_cli_file(clean_env, monkeypatch):
    cwd, home = clean_env / "work", clean_env / "home"
    (home / ".runpod").mkdir(parents=True)
    cwd.mkdir()
    (home / ".runpod/config.toml").write_text('[default]\napi_key = "from-cli-file"\n')
    assert current_settings(cwd=cwd, home=home).api_key.reveal() == "from-cli-file"
    (cwd / ".env").write_text("RUNPOD_API_KEY=from-dotenv\nRP_NOTEBOOK_TTS_ENDPOINT=abc123\n")
    settings = current_settings(cwd=cwd, home=home)
    assert settings.api_key.reveal() == "from-dotenv"
    assert settings.endpoints == {"tts": "abc123"}
    assert settings.sources["RUNPOD_API_KEY"] == ".env"
    monkeypatch.setenv("RUNPOD_API_KEY", "from-env")
    assert current_settings(cwd=cwd, home=home).api_key.reveal() == "from-env"
    configure(api_key="from-configure")
    assert current_settings(cwd=cwd, home=home).api_key.reveal() == "from-configure"


def test_base_urls_default_to_runpod_and_follow_the_sdk_variable_names(clean_env, monkeypatch):
    settings = current_settings(cwd=clean_env, home=clean_env)
    assert settings.endpoint_base_url == "https://api.runpod.ai/v2"
    assert settings.api_base_url == "https://api.runpod.io"
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", "http://127.0.0.1:9/v2/")
    monkeypatch.setenv("RUNPOD_API_BASE_URL", "http://127.0.0.1:9")
    settings = current_settings(cwd=clean_env, home=clean_env)
    assert settings.endpoint_base_url == "http://127.0.0.1:9/v2"
    assert settings.api_base_url == "http://127.0.0.1:9"


def test_secret_is_masked_in_str_repr_and_formatting_and_refuses_pickling():
    secret = Secret(KEY)
    for shown in (str(secret), repr(secret), f"{secret}", repr([secret])):
        assert KEY not in shown
    settings = configure(api_key=KEY)
    assert KEY not in repr(settings)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    reset_configuration()


def test_redact_masks_the_key_in_server_text(clean_env):
    settings = configure(api_key=KEY)
    assert settings.redact(f"bad key {KEY}!") == "bad key ********!"


def test_missing_key_and_missing_endpoint_say_how_to_fix_them(clean_env):
    settings = current_settings(cwd=clean_env, home=clean_env)
    with pytest.raises(ConfigurationError, match="RUNPOD_API_KEY"):
        settings.require_key()
    with pytest.raises(ConfigurationError, match="RP_NOTEBOOK_TTS_ENDPOINT"):
        settings.endpoint_for("tts")


def test_a_malformed_endpoint_id_from_the_environment_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("RP_NOTEBOOK_TTS_ENDPOINT", "../local-tts")
    with pytest.raises(InputError, match="not an endpoint id") as caught:
        current_settings().endpoint_for("tts")
    assert caught.value.field == "RP_NOTEBOOK_TTS_ENDPOINT"


def test_use_local_hint_names_the_way_to_start_in_messages_and_gives_back_the_one_it_replaced(clean_env):
    before = use_local_hint("--local")
    try:
        assert local_hint() == "--local"
        with pytest.raises(ConfigurationError, match="add --local to run on the local endpoint"):
            current_settings(cwd=clean_env, home=clean_env).require_key()
    finally:
        assert use_local_hint(before) == "--local"
    # What was set before: "rp_notebook.start_local()", or the magics' one after a %load_ext.
    assert local_hint() == before


def test_editing_overrides_changes_what_current_settings_reads_and_a_reset_forgets_it(clean_env):
    with editing_overrides() as (values, sources):
        values["api_key"] = Secret(KEY)
        sources["api_key"] = "login"
    assert current_settings(cwd=clean_env, home=clean_env).api_key == Secret(KEY)
    reset_configuration()
    with editing_overrides() as (values, sources):
        assert values == {} and sources == {}
