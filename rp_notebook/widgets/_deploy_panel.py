"""DeployPanel: pick a model preset, GPU pools and workers, press Deploy, watch the endpoint come up.

The controls start at the model's preset (`preset_for`) and changing the model resets them to the
new preset, so the panel never offers a combination the preset would not start from. Pools are
labelled with what `%runpod gpus` shows (GPUs, memory, live price) and marked when too small for
the chosen model; choosing one anyway is refused at Deploy with `Provisioner`'s own message
(`DeployPreset.with_overrides` runs on the click, before any request), shown in the status line.

Threads. Deploying takes several management-API round trips, and reading prices or health one
each: all of them run on daemon threads, so no click blocks the kernel (see `_common` for why
callbacks must return at once). Those threads only set widget traits (`value`, `options`,
`disabled`), never print. The Deploy button is disabled while a deploy runs; every error lands
in the status line.

Widget state holds pool ids, endpoint ids and messages only: the settings are read when a thread
starts and stay in the `Provisioner`, so the API key never reaches a trait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as widgets

from .. import display
from ..config import Settings, current_settings, remember_endpoint
from ..provisioning import GPU_POOLS, PRESETS, Deployment, Provisioner, preset_for
from ._common import error_html, guarded, note_html

__all__ = ["DeployPanel"]

#: The sliders' range: enough for a notebook's needs; `%runpod scale` goes up to Runpod's limit.
MAX_WORKERS = 10
_STYLE = {"description_width": "initial"}


class DeployPanel(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no types
    """Deploy a model's endpoint from its preset, then show that endpoint's health.

    model: the preset to start from ("tts" or "layers").
    """

    def __init__(self, *, model: str = "tts") -> None:
        preset_for(model)  # an unknown model is refused here, naming the presets
        self.deployment: Deployment | None = None
        self._prices: dict[str, float | None] = {}
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []
        self._deploying = False

        self.model = widgets.Dropdown(options=PRESETS, value=model, description="model", style=_STYLE)
        self.pools = widgets.SelectMultiple(rows=len(GPU_POOLS), description="GPU pools", style=_STYLE)
        self.pools.layout.width = "100%"
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
        super().__init__(
            [
                widgets.HTML("<b>Deploy an endpoint</b>"),
                self.model,
                self.pools,
                widgets.HBox([self.workers_min, self.workers_max]),
                widgets.HBox([self.idle_timeout, self.flashboot]),
                widgets.HBox([self.deploy_button, self.refresh_button]),
                self.status,
                self.health,
            ]
        )
        self.add_class("rp-deploy-panel")
        self._in_background(self._load_prices, current_settings())

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

    # -- the preset and the pool labels ------------------------------------------------------------------

    def _on_model(self, _change: dict[str, Any]) -> None:
        self._apply_preset()

    def _apply_preset(self) -> None:
        preset = preset_for(self.model.value)
        self._relabel_pools(keep=preset.gpu_pools)
        self.workers_min.value = min(preset.workers_min, MAX_WORKERS)
        self.workers_max.value = min(preset.workers_max, MAX_WORKERS)
        self.idle_timeout.value = preset.idle_timeout_s
        self.flashboot.value = preset.flashboot != "OFF"

    def _relabel_pools(self, *, keep: tuple[str, ...] | None = None) -> None:
        """Pool labels for the chosen model; keeps the selection (or sets it to `keep`)."""
        need = preset_for(self.model.value).min_vram_gb
        with self._lock:
            selected = keep if keep is not None else tuple(self.pools.value)
            options = []
            for pool in sorted(GPU_POOLS.values(), key=lambda p: (p.vram_gb, p.id)):
                parts = [pool.id, pool.label, display.vram_text(pool)]
                parts.append(f"{display.price_text(self._prices.get(pool.id))}/h")
                if pool.vram_gb < need:
                    parts.append(f"✗ too small for {self.model.value} (needs {need:g} GB)")
                options.append((" · ".join(parts), pool.id))
            self.pools.options = options
            self.pools.value = selected

    def _load_prices(self, settings: Settings) -> None:
        with Provisioner(settings) as prov:
            pools = prov.gpus()
        with self._lock:
            self._prices = {info.pool.id: info.price_per_hour for info in pools}
        self._relabel_pools()

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
