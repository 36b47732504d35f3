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

`login(key)` sets the key for this process only (the login panel, `%runpod panel login`, calls it
with what was typed into its password field). With `save_to=".env"` it is also written to that file
by `save_api_key`, which creates the file readable by its owner only (mode 0600) from the first
byte: the key is written to a new private temporary file in the same folder, which then replaces
the old one in one rename, so no reader ever sees it with wider permissions or half-written.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, InputError

__all__ = [
    "MANAGEMENT_APIS",
    "Secret",
    "Settings",
    "check_endpoint_id",
    "configure",
    "current_settings",
    "editing_overrides",
    "local_hint",
    "login",
    "remember_endpoint",
    "reset_configuration",
    "save_api_key",
    "use_local_hint",
    "user_config_file",
]

DEFAULT_ENDPOINT_BASE_URL = "https://api.runpod.ai/v2"
DEFAULT_API_BASE_URL = "https://api.runpod.io"
RUNPOD_CLI_CONFIG = Path("~/.runpod/config.toml")
#: GraphQL until Runpod retires it (early 2027); "rest" is its successor, REST v2.
MANAGEMENT_APIS = ("graphql", "rest")
CONFIG_DIR_ENV = "RP_NOTEBOOK_CONFIG_DIR"
API_KEY_ENV = "RUNPOD_API_KEY"
#: Runpod's ids are lowercase letters and digits; the local endpoint's are words with dashes. Only
#: these characters: an id becomes a URL path segment, where "/", "?" or ".." would change the URL.
ENDPOINT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
#: A key line in a .env file, with or without `export` (the dotenv syntax allows both).
_DOTENV_KEY_LINE = re.compile(rf"^\s*(?:export\s+)?{API_KEY_ENV}\s*=")


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
                f"or {_try_local()}: no account needed."
            )
        return self.api_key

    def endpoint_for(self, model: str) -> str:
        endpoint_id = self.endpoints.get(model)
        if not endpoint_id:
            raise ConfigurationError(
                f"No endpoint for {model!r}: pass --endpoint ID, set RP_NOTEBOOK_{model.upper()}_ENDPOINT, "
                f"or {_try_local()}."
            )
        # Ids from configure() and `%runpod use` were checked on the way in; one from the environment,
        # .env or a hand-edited config file is checked here, before it becomes part of a URL path.
        return check_endpoint_id(endpoint_id, field=f"RP_NOTEBOOK_{model.upper()}_ENDPOINT")

    def redact(self, text: str) -> str:
        """`text` with the API key masked, for messages built from server or library text."""
        if self.api_key is not None and self.api_key.reveal():
            return text.replace(self.api_key.reveal(), "********")
        return text


#: How messages tell the reader to start the local endpoint; `use_local_hint` sets it.
_local_hint = "rp_notebook.start_local()"


def use_local_hint(text: str) -> str:
    """Name the way to start the local endpoint in messages such as "No Runpod API key. ...";
    returns the one used before (to put back).

    The default, "rp_notebook.start_local()", suits Python; the magics say "%runpod local start",
    the CLI "--local" (an option: the message then reads "add --local to run on the local endpoint").
    """
    global _local_hint
    previous, _local_hint = _local_hint, text
    return previous


def local_hint() -> str:
    """How messages name the way to start the local endpoint (`use_local_hint`)."""
    return _local_hint


def _try_local() -> str:
    hint = _local_hint
    if hint.startswith("-"):
        return f"add {hint} to run on the local endpoint"
    return f"start the local endpoint with {hint}"


_lock = threading.Lock()
_overrides: dict[str, Any] = {}
#: Where an override came from, when not "configure()" (the key typed into the login panel: "login").
_override_sources: dict[str, str] = {}


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
    if endpoints is not None:
        endpoints = {model: check_endpoint_id(endpoint_id) for model, endpoint_id in endpoints.items()}
    with _lock:
        if management_api is not None:
            _overrides["management_api"] = management_api
        if api_key is not None:
            _overrides["api_key"] = api_key if isinstance(api_key, Secret) else Secret(api_key)
            _override_sources.pop("api_key", None)
        if endpoint_base_url is not None:
            _overrides["endpoint_base_url"] = endpoint_base_url.rstrip("/")
        if api_base_url is not None:
            _overrides["api_base_url"] = api_base_url.rstrip("/")
        if endpoints is not None:
            _overrides["endpoints"] = {**_overrides.get("endpoints", {}), **endpoints}
    return current_settings()


@contextmanager
def editing_overrides() -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
    """This process's overrides, `(values, sources)`, locked while the block runs: for a caller that
    swaps several settings at once and puts them back later (`start_local` / `stop_local`), where
    `configure()` one at a time could be read half-done. Keep the block short: every
    `current_settings()` waits for it."""
    with _lock:
        yield _overrides, _override_sources


def reset_configuration() -> None:
    """Drop every `configure()` (and `login()`) override."""
    with _lock:
        _overrides.clear()
        _override_sources.clear()


def login(api_key: str | Secret, *, save_to: str | Path | None = None) -> Settings:
    """Use `api_key` for this process (nothing is written unless `save_to` names a .env file).

    Spaces and line breaks around it (a paste) are dropped. With `save_to`, the key is also written
    there by `save_api_key` (mode 0600). Returns the settings now in force; `sources` says "login".
    The key itself is never part of an error message.
    """
    secret = _clean_key(api_key)
    if save_to is not None:
        save_api_key(secret, save_to)
    with _lock:
        _overrides["api_key"] = secret
        _override_sources["api_key"] = "login"
    return current_settings()


def save_api_key(api_key: str | Secret, path: str | Path = ".env") -> Path:
    """Write RUNPOD_API_KEY to the .env file at `path`, keeping its other lines; returns the path.

    The file ends up readable and writable by its owner only (0600), and never holds the key with
    wider permissions, even for a moment: the new content goes to a temporary file that mkstemp
    creates in the same folder with mode 0600 (O_EXCL: a new file, never an existing one or a
    link planted there), which then replaces `path` in one atomic rename. A `.env` that was
    readable by others before is replaced by a private one. A link at `path` is replaced, not
    followed.
    """
    secret = _clean_key(api_key)
    value = secret.reveal()
    if "'" in value:  # single quotes keep dotenv from expanding ${...}; a key never holds one
        raise ConfigurationError("this API key cannot be written to a .env file: it contains a quote")
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigurationError(f"cannot save the API key to {target}: it is a folder")
    lines: list[str] = []
    if target.is_file():
        lines = [line for line in target.read_text().splitlines() if not _DOTENV_KEY_LINE.match(line)]
    lines.append(f"{API_KEY_ENV}='{value}'")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp already uses 0600; the mode is the point, so say it
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write("\n".join(lines) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


def _clean_key(api_key: str | Secret) -> Secret:
    value = api_key.reveal() if isinstance(api_key, Secret) else api_key
    if not isinstance(value, str):
        raise ConfigurationError(f"an API key is text, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise ConfigurationError("the API key is empty")
    if not all(char.isascii() and char.isprintable() and not char.isspace() for char in value):
        # Never echo it: say what is wrong, not what was typed. (HTTP headers carry ASCII only.)
        raise ConfigurationError(
            "the API key contains spaces, line breaks or characters other than ASCII letters, digits "
            "and punctuation; paste the key alone"
        )
    return Secret(value)


def check_endpoint_id(endpoint_id: object, *, field: str = "endpoint") -> str:
    """`endpoint_id` if it is a well-formed endpoint id, else InputError naming `field`."""
    if not isinstance(endpoint_id, str):
        raise InputError(field, f"expected an endpoint id (text), got {type(endpoint_id).__name__}")
    if not endpoint_id.strip():
        raise InputError(field, "is empty; expected an endpoint id such as abc123xyz")
    if not ENDPOINT_ID.fullmatch(endpoint_id):
        shown = endpoint_id if len(endpoint_id) <= 40 else endpoint_id[:37] + "..."
        raise InputError(
            field, f"{shown!r} is not an endpoint id: ids are letters, digits, '-' and '_' (e.g. abc123xyz)"
        )
    return endpoint_id


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
    key = pick(API_KEY_ENV)
    if key is None and cli_file.get("api_key"):
        key = cli_file["api_key"]
        sources[API_KEY_ENV] = "~/.runpod/config.toml"
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
        override_sources = dict(_override_sources)
    if overrides:
        for name in overrides:
            sources[name] = override_sources.get(name, "configure()")
        if "api_key" in overrides:  # under the variable's name too, where `%runpod` looks for it
            sources[API_KEY_ENV] = sources["api_key"]
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
        endpoint_id = check_endpoint_id(endpoint_id)
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
