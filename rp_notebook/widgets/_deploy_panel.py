"""DeployPanel: pick a model preset, GPU pools and workers, press Deploy, watch the endpoint come up.

The controls start at the model's preset (`preset_for`) and changing the model resets them to the
new preset, so the panel never offers a combination the preset would not start from. The pools are
a table of what `%runpod gpus --model` shows (pool, GPUs, memory, the flex price per second and
hour with the price table's date, whether the chosen model fits, from the preset's memory need), one checkbox per row; chosen rows are tinted and named
in a "Selected:" line. The table takes the output's width and its text wraps. Choosing a pool too
small for the model is refused at Deploy with `Provisioner`'s own message
(`DeployPreset.with_overrides` runs on the click, before any request), shown in the status line.

Threads. Deploying takes several management-API round trips, and reading health one: all of them run on daemon threads, so no click blocks the kernel (see `_common` for why
callbacks must return at once). Those threads only set widget traits (`value`, `options`,
`disabled`), never print. The Deploy button is disabled while a deploy runs; every error lands
in the status line.

Widget state holds pool ids, endpoint ids and messages only: the settings are read when a thread
starts and stay in the `Provisioner`, so the API key never reaches a trait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from html import escape
from typing import Any

import ipywidgets as widgets
import traitlets

from .. import display
from .._spend import record_endpoint
from ..config import Settings, current_settings, remember_endpoint
from ..costs import rates_of
from ..provisioning import GPU_POOLS, PRESETS, Deployment, GpuPool, Provisioner, preset_for
from ..saved_notebooks import KeptAsOneLine
from ._common import MUTED_COLOR, align_labels, error_html, guarded, note_html

__all__ = ["DeployPanel", "PoolTable"]

#: The sliders' range: enough for a notebook's needs; `%runpod scale` goes up to Runpod's limit.
MAX_WORKERS = 10
_STYLE = {"description_width": "initial"}
#: The table's columns, and how much of the output's width each takes (the GPU names and the fits
#: column wrap; the pool id, memory and price keep to one line).
POOL_COLUMNS = ("pool", "GPUs", "VRAM", "flex price", "fits")
_GRID_COLUMNS = "max-content minmax(min-content, 2fr) max-content max-content minmax(min-content, 1fr)"
#: Row tints: a chosen pool, and a chosen pool too small for the model.
SELECTED_BACKGROUND = "#dbeafe"
TOO_SMALL_BACKGROUND = "#fee2e2"


def _cell(text: str, *, bold: bool = False) -> str:
    body = f"<b>{escape(text)}</b>" if bold else escape(text)
    # 18px lines padded by 5px: the first line sits level with the row's checkbox (28px high).
    return f"<div style='line-height:18px;padding:5px 6px;white-space:normal'>{body}</div>"


def _html_cell(text: str, *, bold: bool = False) -> widgets.HTML:
    # No margin: a chosen row's tint runs unbroken across its cells.
    return widgets.HTML(_cell(text, bold=bold), layout=widgets.Layout(margin="0"))


class PoolTable(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no types
    """The serverless GPU pools as a table with a checkbox per row; `value` is the chosen pool ids.

    Columns: pool, GPUs, VRAM (what every worker is sure to get), the flex price per GPU-second and
    hour (from the price table in force, "—" where it has none, the note says why and the table's
    date), and whether the chosen model fits (`set_model`). The table is
    as wide as the output and no wider: the GPU names and the fits column wrap.
    """

    #: The chosen pool ids, like SelectMultiple's value (in the order given; a ticked one comes last).
    value = traitlets.Tuple()

    def __init__(self, pools: Iterable[GpuPool] = ()) -> None:
        self._pools = sorted(pools or GPU_POOLS.values(), key=lambda p: (p.vram_gb, p.id))
        self._need: float | None = None
        self._model = ""
        self._syncing = False
        self.header = [_html_cell(title, bold=True) for title in POOL_COLUMNS]
        self.checkboxes: dict[str, widgets.Checkbox] = {}
        self.cells: dict[str, list[widgets.HTML]] = {}
        children: list[widgets.Widget] = list(self.header)
        for pool in self._pools:
            box = widgets.Checkbox(
                value=False,
                description=pool.id,
                indent=False,
                layout=widgets.Layout(width="auto", height="auto", margin="0", padding="0 6px 0 2px"),
            )
            box.add_class("rp-deploy-pool-select")
            box.observe(self._on_box, names="value")
            cells = [_html_cell(text) for text in self._texts(pool)[1:]]
            self.checkboxes[pool.id] = box
            self.cells[pool.id] = cells
            children += [box, *cells]
        self.grid = widgets.GridBox(
            children,
            layout=widgets.Layout(width="100%", grid_template_columns=_GRID_COLUMNS, grid_gap="0px"),
        )
        self.grid.add_class("rp-deploy-pools-table")
        self.selected = widgets.HTML()
        self.selected.add_class("rp-deploy-pools-selected")
        self.note = widgets.HTML(note_html(display.prices_note(pool.id for pool in self._pools)))
        self.note.add_class("rp-deploy-pools-note")
        super().__init__([self.grid, self.selected, self.note], layout=widgets.Layout(width="100%"))
        self._show_selection()

    # -- what the panel sets ------------------------------------------------------------------------------

    def set_model(self, model: str, need_gb: float) -> None:
        """Mark each pool as fitting `model` (every card with at least `need_gb`) or not."""
        self._model, self._need = model, need_gb
        self.header[-1].value = _cell(f"fits {model} (needs {need_gb:g} GB)", bold=True)
        self._redraw()

    def rows(self) -> list[tuple[str, ...]]:
        """The table as text, one tuple per pool: (pool, GPUs, VRAM, flex price, fits)."""
        return [self._texts(pool) for pool in self._pools]

    def fits(self, pool_id: str) -> bool | None:
        """Whether the chosen model fits `pool_id` (None before `set_model`)."""
        return None if self._need is None else GPU_POOLS[pool_id].vram_gb >= self._need

    # -- drawing ----------------------------------------------------------------------------------------

    def _texts(self, pool: GpuPool) -> tuple[str, ...]:
        fits = self.fits(pool.id)
        fits_text = "" if fits is None else "✓" if fits else "✗ too small"
        return (
            pool.id,
            pool.label,
            display.vram_text(pool),
            display.price_text(pool.id),
            fits_text,
        )

    def _redraw(self) -> None:
        for pool in self._pools:
            for cell, text in zip(self.cells[pool.id], self._texts(pool)[1:], strict=True):
                cell.value = _cell(text)
        self._show_selection()

    def _show_selection(self) -> None:
        chosen = set(self.value)
        for pool in self._pools:
            selected = pool.id in chosen
            background = None
            if selected:
                background = SELECTED_BACKGROUND if self.fits(pool.id) is not False else TOO_SMALL_BACKGROUND
            for widget in (self.checkboxes[pool.id], *self.cells[pool.id]):
                widget.style.background = background
        parts = []
        for pool_id in self.value:
            if self.fits(pool_id) is False:
                parts.append(
                    f"<span style='color:#dc2626'>{escape(pool_id)} (too small for {escape(self._model)})</span>"
                )
            else:
                parts.append(f"<b>{escape(pool_id)}</b>")
        shown = ", ".join(parts) or f"<span style='color:{MUTED_COLOR}'>none: choose at least one pool</span>"
        self.selected.value = f"<div style='line-height:1.3;white-space:normal'>Selected: {shown}</div>"

    # -- the selection ----------------------------------------------------------------------------------

    @traitlets.validate("value")
    def _valid_value(self, proposal: dict[str, Any]) -> tuple[str, ...]:
        chosen = tuple(proposal["value"])
        unknown = [pool_id for pool_id in chosen if pool_id not in self.checkboxes]
        if unknown:
            raise traitlets.TraitError(
                f"unknown GPU pool {unknown[0]!r}; pools: {', '.join(self.checkboxes)}"
            )
        return tuple(dict.fromkeys(chosen))  # in the order given: a preset lists its pools by preference

    @traitlets.observe("value")
    def _on_value(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            for pool_id, box in self.checkboxes.items():
                box.value = pool_id in change["new"]
        finally:
            self._syncing = False
        self._show_selection()

    def _on_box(self, _change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            ticked = [pool_id for pool_id, box in self.checkboxes.items() if box.value]
            # The pools already chosen keep their order; one ticked now comes last.
            self.value = (
                *[p for p in self.value if p in ticked],
                *[p for p in ticked if p not in self.value],
            )
        finally:
            self._syncing = False
        self._show_selection()


class DeployPanel(KeptAsOneLine, widgets.VBox):  # type: ignore[misc]  # ipywidgets has no types
    """Deploy a model's endpoint from its preset, then show that endpoint's health.

    model: the preset to start from ("tts" or "layers").
    """

    saved_as = "Deploy panel (%runpod panel deploy)"

    def __init__(self, *, model: str = "tts") -> None:
        preset_for(model)  # an unknown model is refused here, naming the presets
        self.deployment: Deployment | None = None
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []
        self._deploying = False

        self.model = widgets.Dropdown(options=PRESETS, value=model, description="model", style=_STYLE)
        self.pools = PoolTable(GPU_POOLS.values())
        self.workers_min = widgets.IntSlider(min=0, max=MAX_WORKERS, description="workers min", style=_STYLE)
        self.workers_max = widgets.IntSlider(min=0, max=MAX_WORKERS, description="workers max", style=_STYLE)
        self.idle_timeout = widgets.BoundedIntText(
            min=1, max=3600, description="idle timeout (s)", style=_STYLE
        )
        self.flashboot = widgets.Checkbox(description="FlashBoot", indent=False)
        self.deploy_button = widgets.Button(description="Deploy", button_style="primary", icon="rocket")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", disabled=True)
        self.status = widgets.HTML(note_html("ready"))
        self.health = widgets.HTML()
        for name in ("model", "pools", "workers_min", "workers_max", "idle_timeout", "flashboot"):
            getattr(self, name).add_class(f"rp-deploy-{name.replace('_', '-')}")
        for widget, name in (
            (self.deploy_button, "button"),
            (self.refresh_button, "refresh"),
            (self.status, "status"),
            (self.health, "health"),
        ):
            widget.add_class(f"rp-deploy-{name}")
        self.model.observe(self._on_model, names="value")
        self.deploy_button.on_click(lambda _: self.deploy())
        self.refresh_button.on_click(lambda _: self.refresh())

        self._apply_preset()
        align_labels([self.model, self.workers_min, self.workers_max, self.idle_timeout])
        wrap = widgets.Layout(flex_flow="row wrap")  # side by side where the output is wide enough
        super().__init__(
            [
                widgets.HTML("<b>Deploy an endpoint</b>"),
                self.model,
                widgets.HTML("GPU pools"),
                self.pools,
                widgets.HBox([self.workers_min, self.workers_max], layout=wrap),
                widgets.HBox([self.idle_timeout, self.flashboot], layout=wrap),
                widgets.HBox([self.deploy_button, self.refresh_button]),
                self.status,
                self.health,
            ],
            layout=widgets.Layout(width="100%"),
        )
        self.add_class("rp-deploy-panel")

    # -- actions ----------------------------------------------------------------------------------------

    @guarded
    def deploy(self) -> threading.Thread | None:
        """What Deploy does: check the choices at once, then deploy on a background thread.

        Returns the thread, or None when the choices were refused (the reason is in the status line).
        """
        model = self.model.value
        overrides = self.overrides()
        # Checked here, on the click: a refused choice costs no request and says why at once.
        preset_for(model).with_overrides(**overrides)
        settings = current_settings()
        with self._lock:
            if self._deploying:  # a second click before the button showed as disabled
                return None
            self._deploying = True
        self.deploy_button.disabled = True
        self.status.value = note_html(f"deploying {model}…")
        return self._in_background(self._deploy, settings, model, overrides)

    @guarded
    def refresh(self) -> threading.Thread | None:
        """What Refresh does: read the deployed endpoint's health again, in the background."""
        if self.deployment is None:
            return None
        self.refresh_button.disabled = True
        return self._in_background(self._read_health, current_settings(), self.deployment.endpoint.id)

    def overrides(self) -> dict[str, Any]:
        """The panel's choices as `Provisioner.deploy` overrides (DeployPreset fields)."""
        return {
            "gpu_pools": tuple(self.pools.value),
            "workers_min": self.workers_min.value,
            "workers_max": self.workers_max.value,
            "idle_timeout_s": self.idle_timeout.value,
            "flashboot": "FLASHBOOT" if self.flashboot.value else "OFF",
        }

    @property
    def busy(self) -> bool:
        """Whether a background task (prices, deploy, health) is still running."""
        with self._lock:
            return any(thread.is_alive() for thread in self._threads)

    # -- the preset and the pools table ------------------------------------------------------------------

    def _on_model(self, _change: dict[str, Any]) -> None:
        self._apply_preset()

    def _apply_preset(self) -> None:
        preset = preset_for(self.model.value)
        self.pools.set_model(preset.model, preset.min_vram_gb)
        self.pools.value = preset.gpu_pools
        self.workers_min.value = min(preset.workers_min, MAX_WORKERS)
        self.workers_max.value = min(preset.workers_max, MAX_WORKERS)
        self.idle_timeout.value = preset.idle_timeout_s
        self.flashboot.value = preset.flashboot != "OFF"

    # -- background work ---------------------------------------------------------------------------------

    def _in_background(self, task: Callable[..., None], *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                task(*args)
            except Exception as exc:  # noqa: BLE001 - shown in the status line; a thread has nowhere else
                self._show_error(exc)
            finally:
                self.refresh_button.disabled = self.deployment is None

        thread = threading.Thread(target=run, name="rp-notebook-deploy-panel", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _deploy(self, settings: Settings, model: str, overrides: dict[str, Any]) -> None:
        steps: list[str] = []

        def progress(step: str) -> None:
            steps.append(step)
            self.status.value = "<br>".join(note_html(s) for s in steps) + " …"

        try:
            with Provisioner(settings) as prov:
                deployment = prov.deploy(model, progress=progress, **overrides)
        finally:
            with self._lock:
                self._deploying = False
            self.deploy_button.disabled = False
        self.deployment = deployment
        endpoint_id = deployment.endpoint.id
        record_endpoint(settings.endpoint_base_url, rates_of(deployment.endpoint))
        remember_endpoint(model, endpoint_id, persist=False)
        self.status.value = (
            f"<span style='color:#16a34a'>✓</span> {escape(model)} now runs on endpoint "
            f"<code>{escape(endpoint_id)}</code> in this session; "
            + note_html(f"to keep it: %runpod use {endpoint_id} as {model}")
        )
        self._read_health(settings, endpoint_id)

    def _read_health(self, settings: Settings, endpoint_id: str) -> None:
        deployment = self.deployment
        assert deployment is not None  # only called once a deploy succeeded
        endpoint = deployment.endpoint
        head = (
            f"<b>{escape(endpoint.name)}</b> <code>{escape(endpoint.id)}</code> · "
            f"{escape(', '.join(endpoint.gpu_pools))} · workers {endpoint.workers_min}-{endpoint.workers_max}"
        )
        with Provisioner(settings) as prov:
            try:
                health = prov.health(endpoint_id)
            except Exception as exc:  # noqa: BLE001 - the endpoint exists; say why its health is unknown
                self.health.value = f"{head}<br>{error_html(exc)}"
                return
        workers, jobs = display.health_cells(health)
        self.health.value = f"<div class='rp-deploy-health-line'>{head}<br>workers: {escape(workers)} · jobs: {escape(jobs)}</div>"

    def _show_error(self, exc: BaseException) -> None:
        self.status.value = error_html(exc)

    def __repr__(self) -> str:
        # Short and stable: nbval compares a cell's text/plain, and widget reprs list every trait.
        return f"DeployPanel(model={self.model.value!r})"
