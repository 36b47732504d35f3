"""The deploy panel on real ipywidgets objects, against the real local endpoint over HTTP.

Buttons are pressed with `Button.click()`, which runs the `on_click` handlers as a front end's click
does; the deploy itself then runs on the panel's background thread while the test waits.
"""

from __future__ import annotations

import json
import re

import ipywidgets as widgets
import pytest
import traitlets
from helpers import all_widget_state, eventually

import rp_notebook
from rp_notebook import display
from rp_notebook.config import current_settings
from rp_notebook.costs import PoolPrice, PriceTable, use_prices
from rp_notebook.provisioning import GPU_POOLS, Provisioner, preset_for
from rp_notebook.widgets import DeployPanel
from rp_notebook.widgets._deploy_panel import PoolTable

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def opened():
    """Panels made by a test, closed after it; each is first left idle (no thread still running)."""
    panels = []
    yield panels.append
    for panel in panels:
        eventually(lambda panel=panel: not panel.busy)
        panel.close()


def row_of(panel: DeployPanel, pool_id: str) -> tuple[str, ...]:
    return next(row for row in panel.pools.rows() if row[0] == pool_id)


def fits_column(panel: DeployPanel) -> dict[str, bool]:
    return {row[0]: row[4] == "✓" for row in panel.pools.rows()}


def every_widget(root: widgets.Widget) -> list[widgets.Widget]:
    found = [root]
    for child in getattr(root, "children", ()):
        found += every_widget(child)
    return found


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
    assert row_of(panel, "AMPERE_16")[4] == "✓"

    panel.workers_max.value = 7
    panel.model.value = "layers"
    layers = preset_for("layers")
    assert panel.pools.value == layers.gpu_pools and panel.workers_max.value == layers.workers_max
    assert panel.idle_timeout.value == layers.idle_timeout_s
    assert row_of(panel, "AMPERE_48") == (
        "AMPERE_48",
        "A40 / RTX A6000",
        "48 GB",
        "$0.00034/s · $1.22/h",
        "✗ too small",
    )
    assert row_of(panel, "AMPERE_80")[4] == "✓"


@pytest.mark.parametrize("model", ["tts", "layers"])
def test_the_fits_column_is_the_presets_memory_need_and_follows_the_model(model, opened):
    other = "layers" if model == "tts" else "tts"
    panel = DeployPanel(model=other)
    opened(panel)
    panel.model.value = model
    need = preset_for(model).min_vram_gb
    assert fits_column(panel) == {pool.id: pool.vram_gb >= need for pool in GPU_POOLS.values()}
    assert f"fits {model} (needs {need:g} GB)" in panel.pools.header[-1].value
    # The selection follows the model too: its preset's pools are ticked, tinted and named.
    chosen = preset_for(model).gpu_pools
    assert panel.pools.value == chosen
    for pool_id, box in panel.pools.checkboxes.items():
        assert box.value is (pool_id in chosen)
        tinted = {cell.style.background for cell in panel.pools.cells[pool_id]}
        assert tinted == ({"#dbeafe"} if pool_id in chosen else {None})
    assert re.findall(r"<b>(\w+)</b>", panel.pools.selected.value) == list(chosen)
    assert panel.pools.selected.value.count("Selected:") == 1


def test_ticking_pools_changes_the_selection_and_a_too_small_one_is_marked(opened):
    panel = DeployPanel(model="layers")
    opened(panel)
    panel.pools.checkboxes["HOPPER_141"].value = False
    panel.pools.checkboxes["AMPERE_48"].value = True
    assert panel.pools.value == ("AMPERE_80", "ADA_80_PRO", "AMPERE_48")  # the preset's order kept
    assert panel.overrides()["gpu_pools"] == panel.pools.value
    assert "AMPERE_48 (too small for layers)" in panel.pools.selected.value
    assert {cell.style.background for cell in panel.pools.cells["AMPERE_48"]} == {"#fee2e2"}
    panel.pools.value = ()
    assert not any(box.value for box in panel.pools.checkboxes.values())
    assert (
        "Selected: <span" in panel.pools.selected.value
        and "choose at least one" in panel.pools.selected.value
    )
    with pytest.raises(traitlets.TraitError, match="unknown GPU pool 'AMPERE_12'"):
        panel.pools.value = ("AMPERE_12",)


def test_the_pools_table_is_the_local_endpoints_gpu_list_with_the_price_tables_prices(use_local, opened):
    panel = DeployPanel(model="layers")
    opened(panel)
    with Provisioner() as prov:
        listed = prov.gpus(model="layers")
    assert panel.pools.rows() == [
        (
            info.pool.id,
            info.pool.label,
            display.vram_text(info.pool),
            display.price_text(info.pool.id),
            "✓" if info.fits else "✗ too small",
        )
        for info in listed
    ]
    # Runpod's serverless prices, dated; the two pools its pricing page leaves out say so.
    assert "prices per GPU: Runpod&#x27;s serverless pricing page" in panel.pools.note.value
    assert "read 2026-12-05" in panel.pools.note.value
    assert "ADA_32_PRO (not on Runpod&#x27;s serverless pricing page)" in panel.pools.note.value


def test_the_price_column_follows_the_price_table_in_force():
    mine = PriceTable({"ADA_24": PoolPrice("ADA_24", "4090", 24, 0.001, 0.0005)}, "2027-01-01", "my rates")
    before = use_prices(mine)
    table = PoolTable(GPU_POOLS.values())
    try:
        prices = {row[0]: row[3] for row in table.rows()}
        assert prices["ADA_24"] == "$0.00100/s · $3.60/h" and prices["AMPERE_16"] == "—"
        assert "my rates, read 2027-01-01" in table.note.value
    finally:
        table.close()
        use_prices(before)


def test_the_panel_fits_the_output_width(opened):
    panel = DeployPanel()
    opened(panel)
    assert panel.layout.width == "100%" and panel.pools.layout.width == "100%"
    assert panel.pools.grid.layout.width == "100%"
    assert "px" not in panel.pools.grid.layout.grid_template_columns  # shares out the width
    for widget in every_widget(panel):
        for name in ("width", "min_width"):
            for pixels in re.findall(r"(\d+)px", getattr(widget.layout, name) or ""):
                assert int(pixels) <= 600, (widget, name)
    for cell in (cell for cells in panel.pools.cells.values() for cell in cells):
        assert "white-space:normal" in cell.value  # long GPU lists wrap instead of widening the table
    for box in panel.children:
        if isinstance(box, widgets.HBox) and box.children[0] is not panel.deploy_button:
            assert box.layout.flex_flow == "row wrap"


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

    state = json.dumps(all_widget_state(), default=str)
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
