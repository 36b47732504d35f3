"""LoginPanel: paste the Runpod API key into a password field; the field is emptied as it is read.

Why a panel at all: a key typed into a cell's source ends up in the saved notebook, its history and
every copy shared. The panel keeps it out of all of them:

- The key lives in a `Password` field only until the button is pressed. The click reads it and sets
  the field back to "" before anything else happens (even when the key is then refused), so the
  widget state that Jupyter saves into the notebook (`metadata.widgets`) never holds it, and the
  field's frontend copy is emptied by the same update.
- The field does not send the key on every keystroke (`continuous_update=False`), and the kernel
  does not echo what the browser sent back to other views of the notebook (`echo_update=False` on
  its value, as ipywidgets' FileUpload does for file contents).
- The key then lives in this process only (`rp_notebook.config.login`, in a `Secret`). Ticking
  "save" also writes it to a `.env` file created with mode 0600 (`config.save_api_key`), so the
  next kernel finds it without the panel.
- Nothing shows the key afterwards: the status line says where the key came from, never its value.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
from traitlets import Unicode

from ..config import API_KEY_ENV, current_settings, login
from ..saved_notebooks import KeptAsOneLine
from ._common import error_html, note_html

__all__ = ["LoginPanel"]

_STYLE = {"description_width": "initial"}


class _KeyField(widgets.Password):  # type: ignore[misc]  # ipywidgets has no types
    """A Password field whose value the kernel does not echo back to the frontends."""

    value = Unicode(help="The key, until the panel reads and clears it").tag(sync=True, echo_update=False)


class LoginPanel(KeptAsOneLine, widgets.VBox):  # type: ignore[misc]  # ipywidgets has no types
    """Give rp_notebook a Runpod API key for this kernel, and optionally save it to a .env file.

    dotenv_path: the file "save" writes (default: `.env` in the working folder, which is where
    rp_notebook reads it). save: whether "save" starts ticked.
    """

    saved_as = "Login panel (%runpod panel login)"

    def __init__(self, *, dotenv_path: str | Path | None = None, save: bool = False) -> None:
        self.dotenv_path = Path(dotenv_path).expanduser() if dotenv_path is not None else Path(".env")
        self.key_field = _KeyField(
            placeholder="paste your Runpod API key",
            description="API key",
            continuous_update=False,
            style=_STYLE,
        )
        self.key_field.layout.width = "28em"
        self.save = widgets.Checkbox(
            value=save,
            description=f"also save it to {self.dotenv_path} (readable by you only)",
            indent=False,
        )
        self.button = widgets.Button(description="Use this key", button_style="primary", icon="key")
        self.status = widgets.HTML(self._current())
        self.key_field.add_class("rp-login-key")
        self.save.add_class("rp-login-save")
        self.button.add_class("rp-login-button")
        self.status.add_class("rp-login-status")
        self.button.on_click(self._on_click)
        super().__init__(
            [
                widgets.HTML("<b>Runpod API key</b>"),
                widgets.HBox([self.key_field, self.button]),
                self.save,
                self.status,
            ]
        )
        self.add_class("rp-login-panel")

    def submit(self) -> bool:
        """What the button does: take the key from the field, empty the field, use the key.

        Returns True when the key is now in use, False when it was refused (the status says why).
        """
        typed = self.key_field.value
        self.key_field.value = ""  # first, whatever follows: the key must not stay in widget state
        if not typed.strip():
            self.status.value = error_html(ValueError("paste a key into the field first"))
            return False
        saved_to = self.dotenv_path if self.save.value else None
        try:
            login(typed, save_to=saved_to)
        except Exception as exc:  # noqa: BLE001 - shown in the panel; its messages never hold the key
            self.status.value = error_html(exc)
            return False
        where = f" and saved to {saved_to.resolve()} (mode 0600)" if saved_to is not None else ""
        self.status.value = note_html(
            f"{API_KEY_ENV} set for this kernel{where}. Its value is never shown; "
            "it is checked by the first request."
        )
        return True

    def _on_click(self, _button: widgets.Button) -> None:
        self.submit()

    def _current(self) -> str:
        settings = current_settings()
        if settings.api_key is None:
            return note_html(f"No key yet ({API_KEY_ENV} is not set in the environment, .env or ~/.runpod).")
        source = settings.sources.get(API_KEY_ENV, "")
        return note_html(f"A key is set{f' (from {source})' if source else ''}; a new one replaces it here.")

    def __repr__(self) -> str:
        # Stable and short (nbval compares text/plain), and never the field's content.
        return "LoginPanel()"
