"""The deploy panel on real ipywidgets objects, against the real local endpoint over HTTP.

Buttons are pressed with `Button.click()`, which runs the `on_click` handlers as a front end's click
does; the deploy itself then runs on the panel's background thread while the test waits.
"""

from __future__ import annotations

import json

import ipywidgets as widgets
import pytest
from helpers import eventually

import rp_notebook
from rp_notebook.config import current_settings
from rp_notebook.provisioning import Provisioner, preset_for
from rp_notebook.widgets import DeployPanel

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def opened():
    """Panels made by a test, closed after it; each is first left idle (no thread still running)."""
    panels = []
    yield panels.append
    for panel in panels:
        eventually(lambda panel=panel: not panel.busy)
        panel.close()


def label_of(panel: DeployPanel, pool_id: str) -> str:
    return next(label for label, value in panel.pools.options if value == pool_id)


def server_objects() -> tuple[set[str], set[str]]:
    with Provisioner() as prov:
        return {t.id for t in prov.templates()}, {e.endpoint.id for e in prov.endpoints(health=False)}


def test_controls_start_at_the_models_preset_and_a_new_model_resets_them(opened):
    panel = DeployPanel()
    opened(panel)
    tts = preset_for("tts")
    assert panel.pools.value == tts.gpu_pools
    assert (panel.workers_min.value, panel.workers_max.value) == (tts.workers_min, tts.workers_max)
    assert panel.idle_timeout.value == tts.idle_timeout_s and panel.flashboot.value is True
    assert "too small" not in label_of(panel, "AMPERE_16")

    panel.workers_max.value = 7
    panel.model.value = "layers"
    layers = preset_for("layers")
    assert panel.pools.value == layers.gpu_pools and panel.workers_max.value == layers.workers_max
    assert panel.idle_timeout.value == layers.idle_timeout_s
    label = label_of(panel, "AMPERE_48")
    assert label.startswith("AMPERE_48 · A40 / RTX A6000 · 48 GB · ")
    assert "too small for layers (needs 58 GB)" in label
    assert "too small" not in label_of(panel, "AMPERE_80")


def test_pool_labels_get_the_live_price_or_a_dash(use_local, opened):
    panel = DeployPanel()
    opened(panel)
    eventually(lambda: not panel.busy)
    assert "ready" in panel.status.value  # the prices loaded without an error
    for label, _ in panel.pools.options:
        price = label.split(" · ")[3]
        assert price == "—/h" or (price.startswith("$") and price.endswith("/h"))


def test_deploy_runs_in_the_background_and_shows_the_new_endpoints_health(use_local, opened):
    panel = DeployPanel()
    opened(panel)
    eventually(lambda: not panel.busy)
    panel.workers_max.value = 1
    # The status line changes during the deploy, on its thread: note the button's state each time.
    button_while_running: list[bool] = []
    panel.status.observe(
        lambda change: (
            "creating" in change["new"] and button_while_running.append(panel.deploy_button.disabled)
        ),
        names="value",
    )
    panel.deploy_button.click()
    eventually(lambda: panel.deployment is not None and "idle" in panel.health.value)
    endpoint_id = panel.deployment.endpoint.id
    assert button_while_running and all(button_while_running)
    assert f"now runs on endpoint <code>{endpoint_id}</code>" in panel.status.value
    assert f"%runpod use {endpoint_id} as tts" in panel.status.value
    assert current_settings().endpoints["tts"] == endpoint_id
    assert panel.deployment.endpoint.workers_max == 1 and "0 completed" in panel.health.value
    eventually(lambda: not panel.busy)
    assert not panel.deploy_button.disabled and not panel.refresh_button.disabled

    rp_notebook.tts("Counted in the endpoint's health.", endpoint=endpoint_id).result(timeout=180)
    panel.refresh_button.click()
    eventually(lambda: "1 completed" in panel.health.value)

    state = json.dumps(widgets.Widget.get_manager_state(drop_defaults=False), default=str)
    assert endpoint_id in state and use_local.api_key not in state
    with Provisioner() as prov:
        prov.delete_endpoint(endpoint_id, force=True)
        prov.delete_template(panel.deployment.template.name)


def test_a_pool_too_small_for_the_model_shows_why_and_sends_nothing(use_local, opened):
    panel = DeployPanel(model="layers")
    opened(panel)
    eventually(lambda: not panel.busy)
    before = server_objects()
    panel.pools.value = ("AMPERE_48",)
    panel.deploy_button.click()
    assert "AMPERE_48" in panel.status.value and "too small for the layers model" in panel.status.value
    assert "rp-error" in panel.status.value and not panel.busy and not panel.deploy_button.disabled
    assert panel.deployment is None and server_objects() == before


def test_panel_magic_and_function_open_the_deploy_panel_with_a_short_repr(ip, opened):
    from_magic = ip.run_line_magic("runpod", "panel deploy")
    from_function = rp_notebook.panel("deploy", model="layers")
    for panel in (from_magic, from_function):
        opened(panel)
    assert isinstance(from_magic, DeployPanel)
    assert [repr(from_magic), repr(from_function)] == [
        "DeployPanel(model='tts')",
        "DeployPanel(model='layers')",
    ]
