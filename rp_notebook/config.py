"""Settings: the API key, the two base URLs, and which endpoint serves each model.

Read from the same names the runpod SDK and CLI use, first match wins:

1. values given to `configure(...)` in this process (the local endpoint sets them when it starts);
2. environment variables: RUNPOD_API_KEY, RUNPOD_ENDPOINT_BASE_URL, RUNPOD_API_BASE_URL,
   RP_NOTEBOOK_<MODEL>_ENDPOINT (e.g. RP_NOTEBOOK_TTS_ENDPOINT), RP_NOTEBOOK_MANAGEMENT_API;
3. a `.env` file in the working folder, with the same names;
4. rp_notebook's own user config file (`user_config_file()`), which `%runpod use ID as tts` writes:
   endpoint choices belong to the user, not to a notebook that may be shared;
5. `~/.runpod/config.toml`, the runpod CLI's file (`[default] api_key = "..."`).

Settings are read afresh on each `current_settings()` call, so a key exported in a running kernel
(`os.environ[...] = ...`) or a `.env` written by a setup cell takes effect without a restart.

The key is held in a `Secret`: its str and repr are masked, so it cannot leak through a cell output,
a log line or an exception message by accident. Only the HTTP layer calls `.reveal()`.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "MANAGEMENT_APIS",
    "Secret",
    "Settings",
    "configure",
    "current_settings",
    "remember_endpoint",
    "reset_configuration",
    "user_config_file",
]

DEFAULT_ENDPOINT_BASE_URL = "https://api.runpod.ai/v2"
DEFAULT_API_BASE_URL = "https://api.runpod.io"
RUNPOD_CLI_CONFIG = Path("~/.runpod/config.toml")
#: GraphQL until Runpod retires it (early 2027); "rest" is its successor, REST v2.
MANAGEMENT_APIS = ("graphql", "rest")
CONFIG_DIR_ENV = "RP_NOTEBOOK_CONFIG_DIR"


class Secret:
    """A string that never shows itself: str(), repr() and f-strings print a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # a pickled Secret would carry the key; refuse
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Settings:
    """Everything the client needs to reach Runpod (or the local endpoint)."""

    api_key: Secret | None = None
    endpoint_base_url: str = DEFAULT_ENDPOINT_BASE_URL
    api_base_url: str = DEFAULT_API_BASE_URL
    #: Model role ("tts", "layers") -> endpoint id.
    endpoints: Mapping[str, str] = field(default_factory=dict)
    #: Which management API provisioning uses: "graphql" or "rest" (REST v2).
    management_api: str = "graphql"
    #: Where each value came from ("environment", ".env", "user config", "~/.runpod/config.toml",
    #: "configure()").
    sources: Mapping[str, str] = field(default_factory=dict)

    def require_key(self) -> Secret:
        if self.api_key is None or not self.api_key.reveal():
            raise ConfigurationError(
                "No Runpod API key. Set RUNPOD_API_KEY in the environment or a .env file, run `runpod config`, "
                "or start the local endpoint (rp_notebook.start_local()) to try things without an account."
            )
        return self.api_key

    def endpoint_for(self, model: str) -> str:
        endpoint_id = self.endpoints.get(model)
        if not endpoint_id:
            raise ConfigurationError(
                f"No endpoint for {model!r}: pass --endpoint ID, set RP_NOTEBOOK_{model.upper()}_ENDPOINT, "
                "or start the local endpoint (rp_notebook.start_local())."
            )
        return endpoint_id

    def redact(self, text: str) -> str:
        """`text` with the API key masked, for messages built from server or library text."""
        if self.api_key is not None and self.api_key.reveal():
            return text.replace(self.api_key.reveal(), "********")
        return text


_lock = threading.Lock()
_overrides: dict[str, Any] = {}


def configure(
    *,
    api_key: str | Secret | None = None,
    endpoint_base_url: str | None = None,
    api_base_url: str | None = None,
    endpoints: Mapping[str, str] | None = None,
    management_api: str | None = None,
) -> Settings:
    """Override settings for this process only (nothing is written to disk). Returns the result."""
    if management_api is not None:
        _check_management_api(management_api, "configure(management_api=...)")
    with _lock:
        if management_api is not None:
            _overrides["management_api"] = management_api
        if api_key is not None:
            _overrides["api_key"] = api_key if isinstance(api_key, Secret) else Secret(api_key)
        if endpoint_base_url is not None:
            _overrides["endpoint_base_url"] = endpoint_base_url.rstrip("/")
        if api_base_url is not None:
            _overrides["api_base_url"] = api_base_url.rstrip("/")
        if endpoints is not None:
            _overrides["endpoints"] = {**_overrides.get("endpoints", {}), **endpoints}
    return current_settings()


def reset_configuration() -> None:
    """Drop every `configure()` override."""
    with _lock:
        _overrides.clear()


def current_settings(*, cwd: Path | None = None, home: Path | None = None) -> Settings:
    """The settings in force now, merged from every source (see the module docstring)."""
    env_file = _read_env_file((cwd or Path.cwd()) / ".env")
    cli_file = _read_runpod_cli_config(
        (home / ".runpod/config.toml") if home else RUNPOD_CLI_CONFIG.expanduser()
    )
    layers: list[tuple[str, Mapping[str, str]]] = [
        ("environment", os.environ),
        (".env", env_file),
        ("user config", _read_user_config()),
    ]
    sources: dict[str, str] = {}

    def pick(name: str) -> str | None:
        for source, values in layers:
            value = values.get(name)
            if value:
                sources[name] = source
                return value
        return None

    settings = Settings()
    key = pick("RUNPOD_API_KEY")
    if key is None and cli_file.get("api_key"):
        key = cli_file["api_key"]
        sources["RUNPOD_API_KEY"] = "~/.runpod/config.toml"
    endpoints: dict[str, str] = {}
    from .models import MODELS  # stdlib-only module; imported here to keep config importable alone

    for model in MODELS:
        endpoint_id = pick(f"RP_NOTEBOOK_{model.upper()}_ENDPOINT")
        if endpoint_id:
            endpoints[model] = endpoint_id
    settings = replace(
        settings,
        api_key=Secret(key) if key else None,
        endpoint_base_url=(pick("RUNPOD_ENDPOINT_BASE_URL") or DEFAULT_ENDPOINT_BASE_URL).rstrip("/"),
        api_base_url=(pick("RUNPOD_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/"),
        endpoints=endpoints,
        management_api=_check_management_api(
            pick("RP_NOTEBOOK_MANAGEMENT_API") or "graphql", "RP_NOTEBOOK_MANAGEMENT_API"
        ),
    )
    with _lock:
        overrides = dict(_overrides)
    if overrides:
        for name in overrides:
            sources[name] = "configure()"
        merged_endpoints = {**settings.endpoints, **overrides.pop("endpoints", {})}
        settings = replace(settings, **overrides, endpoints=merged_endpoints)
    return replace(settings, sources=sources)


def _read_env_file(path: Path) -> Mapping[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _read_runpod_cli_config(path: Path, profile: str = "default") -> Mapping[str, str]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    section = data.get(profile)
    return {k: str(v) for k, v in section.items()} if isinstance(section, dict) else {}


def _check_management_api(value: str, where: str) -> str:
    if value not in MANAGEMENT_APIS:
        raise ConfigurationError(f"{where} must be one of {', '.join(MANAGEMENT_APIS)}, got {value!r}")
    return value


def user_config_file() -> Path:
    """rp_notebook's own settings file: `$RP_NOTEBOOK_CONFIG_DIR/config.toml`, else the platform's
    user config folder (e.g. ~/.config/rp_notebook/config.toml on Linux)."""
    folder = os.environ.get(CONFIG_DIR_ENV)
    if not folder:
        from platformdirs import user_config_dir

        folder = user_config_dir("rp_notebook", appauthor=False)
    return Path(folder).expanduser() / "config.toml"


def _read_user_config() -> Mapping[str, str]:
    """The user config file as setting names (`[endpoints] tts = "id"` -> RP_NOTEBOOK_TTS_ENDPOINT)."""
    path = user_config_file()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    values: dict[str, str] = {}
    for model, endpoint_id in (data.get("endpoints") or {}).items():
        values[f"RP_NOTEBOOK_{str(model).upper()}_ENDPOINT"] = str(endpoint_id)
    if data.get("management_api"):
        values["RP_NOTEBOOK_MANAGEMENT_API"] = str(data["management_api"])
    return values


def remember_endpoint(model: str, endpoint_id: str | None, *, persist: bool = True) -> Path | None:
    """Serve `model` from `endpoint_id` in this process and, with `persist`, in later sessions too.

    Written to the user config file (never the notebook, never `.env`): a notebook that is shared
    should not carry one person's endpoints. `endpoint_id=None` forgets the saved choice.
    Returns the file written, or None when nothing was written.
    """
    from .models import MODELS

    if model not in MODELS:
        raise ConfigurationError(f"unknown model {model!r}; models: {', '.join(MODELS)}")
    if endpoint_id is not None:
        configure(endpoints={model: endpoint_id})
    else:
        with _lock:
            _overrides.get("endpoints", {}).pop(model, None)
    if not persist:
        return None
    import tomli_w

    path = user_config_file()
    data: dict[str, Any] = {}
    if path.is_file():
        data = tomllib.loads(path.read_text())
    saved = dict(data.get("endpoints") or {})
    if endpoint_id is None:
        saved.pop(model, None)
    else:
        saved[model] = endpoint_id
    data["endpoints"] = saved
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(data))
    tmp.replace(path)
    return path
