"""What jobs cost: the price table, the formula, jobs priced on the real local endpoint, the ledger,
%runpod cost / budget / gpus, and a budget that refuses a job and a batch before sending them.

Jobs run on the session's local endpoint over real HTTP; its echo endpoint is given GPU pools the
way a deploy from here would (`record_endpoint`), so its jobs are priced by Runpod's table.
"""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
from helpers import eventually

import rp_notebook
from rp_notebook import _spend
from rp_notebook.costs import (
    RUNPOD_PRICES,
    Budget,
    CostEstimator,
    EndpointRates,
    JobCost,
    PoolPrice,
    PriceTable,
    current_prices,
    estimate_job_cost,
    set_budget,
    usd_text,
    use_prices,
)
from rp_notebook.errors import BudgetExceededError, InputError
from rp_notebook.jobs import JobManager, get_manager
from rp_notebook.jobs._ledger import Ledger, LedgerEntry
from rp_notebook.provisioning import GPU_POOLS
from rp_notebook.views._job_card import JobCard, card_head_html

pytestmark = pytest.mark.timeout(180)

ADA_24 = RUNPOD_PRICES.prices["ADA_24"]


@pytest.fixture(autouse=True)
def _no_budget_left_behind():
    yield
    set_budget(None)


@pytest.fixture
def priced_echo(use_local):
    """The echo endpoint priced as an RTX 4090 (ADA_24) endpoint, as deploying it from here would."""
    _spend.record_endpoint(use_local.job_api_url, EndpointRates("echo", ("ADA_24",), idle_timeout_s=5.0))
    yield use_local
    get_manager().costs.set_rates(use_local.job_api_url, EndpointRates("echo", ()))


# -- the price table ---------------------------------------------------------------------------------------


def test_every_runpod_pool_has_a_price_or_says_why_not_and_the_table_is_dated():
    assert set(RUNPOD_PRICES.prices) | set(RUNPOD_PRICES.unpriced) == set(GPU_POOLS)
    for price in RUNPOD_PRICES.prices.values():
        assert 0 < price.active_per_s < price.flex_per_s  # active workers are the discounted ones
        assert math.isclose(price.flex_per_hour, price.flex_per_s * 3600)
    assert RUNPOD_PRICES.as_of == "2026-12-05" and "docs.runpod.io/serverless/pricing" in RUNPOD_PRICES.label
    assert (ADA_24.flex_per_s, ADA_24.active_per_s) == (0.00031, 0.00021)


def test_use_prices_swaps_the_table_and_gives_back_the_one_before():
    mine = PriceTable({"ADA_24": PoolPrice("ADA_24", "4090", 24, 0.001, 0.0005)}, "2027-01-01", "my rates")
    before = use_prices(mine)
    try:
        assert current_prices() is mine
    finally:
        use_prices(before)
    assert current_prices() is before


# -- the formula -------------------------------------------------------------------------------------------


def test_a_job_costs_its_run_and_the_cold_start_it_waited_for_at_the_pools_flex_price():
    rates = EndpointRates("ep", ("ADA_24", "AMPERE_24"))
    cold = estimate_job_cost(execution_s=12.0, delay_s=3.0, cold_start=True, rates=rates)
    assert cold.usd == pytest.approx(15.0 * 0.00031) and cold.pool == "ADA_24"
    assert cold.execution_usd == pytest.approx(12 * 0.00031) and cold.cold_start_usd == pytest.approx(
        3 * 0.00031
    )
    assert "ran 12.0 s + cold start 3.0 s x $0.00031/s" in cold.basis and "ADA_24" in cold.basis
    warm = estimate_job_cost(execution_s=12.0, delay_s=3.0, cold_start=False, rates=rates)
    assert warm.usd == pytest.approx(12.0 * 0.00031) and warm.cold_start_s == 0
    two_gpus = estimate_job_cost(
        execution_s=10.0, delay_s=0, cold_start=False, rates=EndpointRates("ep", ("HOPPER_141",), gpu_count=2)
    )
    assert two_gpus.usd == pytest.approx(10 * 0.00155 * 2) and "x 2 GPUs" in two_gpus.basis


def test_the_first_priced_pool_is_used_and_an_unpriced_endpoint_says_why():
    later = estimate_job_cost(
        execution_s=1, delay_s=0, cold_start=False, rates=EndpointRates("ep", ("ADA_32_PRO", "AMPERE_16"))
    )
    assert later.pool == "AMPERE_16" and "the first priced of ADA_32_PRO, AMPERE_16" in later.basis
    cpu = estimate_job_cost(execution_s=1, delay_s=0, cold_start=False, rates=EndpointRates("ep", ()))
    assert cpu.usd is None and cpu.short() == "no price" and "runs on a CPU" in cpu.basis
    unknown = estimate_job_cost(execution_s=1, delay_s=0, cold_start=False, rates=None, unknown_why="offline")
    assert unknown.usd is None and unknown.basis == "no price: offline"


def test_an_endpoints_active_workers_cost_per_hour_at_the_active_price():
    rates = EndpointRates("ep", ("AMPERE_24",), workers_min=2)
    assert rates.running_per_hour() == pytest.approx(2 * 0.00013 * 3600)
    assert EndpointRates("ep", ("AMPERE_24",), workers_min=0).running_per_hour() == 0
    assert EndpointRates("ep", (), workers_min=1).running_per_hour() is None


def test_a_job_cost_round_trips_through_json():
    cost = estimate_job_cost(
        execution_s=2.5, delay_s=1, cold_start=True, rates=EndpointRates("e", ("ADA_24",))
    )
    assert JobCost.from_json(cost.to_json()) == cost
    assert set(cost.to_json()) == {field.name for field in dataclasses.fields(JobCost)}


# -- priced jobs on the local endpoint ---------------------------------------------------------------------


def test_jobs_on_the_local_endpoint_cost_the_formula_of_their_reported_times(priced_echo, tmp_path):
    manager = JobManager(ledger=Ledger(tmp_path / "ledger"))  # its own: every worker is new to it
    manager.costs.set_rates(priced_echo.job_api_url, EndpointRates("echo", ("ADA_24",)))
    try:
        first = manager.submit("echo", {"sleep": 0.3})
        first.result(timeout=60)
        second = manager.submit("echo", {"sleep": 0.2})
        second.result(timeout=60)
    finally:
        manager.close()
    assert first.worker_id == second.worker_id  # one echo worker: the second found it warm
    assert first.cost is not None and second.cost is not None
    assert first.execution_time is not None and first.delay_time is not None
    assert first.execution_time >= 0.3
    assert first.cost.usd == pytest.approx((first.execution_time + first.delay_time) * ADA_24.flex_per_s)
    assert first.cost.cold_start_s == pytest.approx(first.delay_time)
    assert second.cost.usd == pytest.approx(second.execution_time * ADA_24.flex_per_s)
    assert second.cost.cold_start_s == 0
    # The ledger keeps each cost with the times and worker it came from.
    (entry,) = Ledger(tmp_path / "ledger").find(first.id)
    assert entry.cost == first.cost and entry.worker_id == first.worker_id
    assert entry.execution_s == pytest.approx(first.execution_time)


def test_the_job_card_and_jobs_listing_show_the_cost_when_the_job_ends(priced_echo, ip):
    job = get_manager().submit("echo", {"sleep": 0.1})
    job.result(timeout=60)
    assert job.cost is not None and job.cost.usd is not None
    head = card_head_html(job)
    assert f"· {job.cost.short()}" in head and "rp-job-cost" in head and "ADA_24" in head  # basis as title
    listing = ip.run_line_magic("runpod", "jobs --limit 5")._repr_mimebundle_()["text/plain"]
    row = next(line for line in listing.splitlines() if line.startswith(job.id))
    assert job.cost.short() in row


def test_jobs_of_an_endpoint_whose_pools_the_api_gives_are_priced_without_being_told(use_local):
    # Deployed through the management API (not from here): the manager reads its pools itself.
    from rp_notebook.provisioning import Provisioner

    with Provisioner() as prov:
        deployment = prov.deploy("tts", name="priced-tts", gpu_pools=("AMPERE_24",), workers_max=1)
    try:
        job = rp_notebook.tts("Priced by its pools.", endpoint=deployment.endpoint.id)
        job.result(timeout=120)
        # Priced at its end, or just after if the pools were still being read then.
        eventually(lambda: job.cost is not None and job.cost.usd is not None, timeout=30)
        assert job.cost is not None and job.cost.pool == "AMPERE_24"
        assert job.cost.usd == pytest.approx(
            (job.execution_time + job.cost.cold_start_s) * RUNPOD_PRICES.prices["AMPERE_24"].flex_per_s
        )
    finally:
        with Provisioner() as prov:
            prov.delete_endpoint(deployment.endpoint.id, force=True)


# -- budgets -------------------------------------------------------------------------------------------------


def test_a_budget_refuses_the_job_that_would_pass_it_before_sending_anything(priced_echo):
    spent_job = get_manager().submit("echo", {"sleep": 0.2})
    spent_job.result(timeout=60)
    assert spent_job.cost is not None and spent_job.cost.usd
    spent = _spend.spent("session")
    assert spent >= spent_job.cost.usd
    rp_notebook.budget(usd=spent * 0.999)  # already spent: the next job is refused
    before = len(get_manager().jobs())
    with pytest.raises(BudgetExceededError) as refused:
        rp_notebook.tts("Over budget.")
    message = str(refused.value)
    assert "refused" in message and "per session" in message and "has reached" in message
    assert refused.value.budget == pytest.approx(spent * 0.999) and refused.value.spent == pytest.approx(
        spent
    )
    assert len(get_manager().jobs()) == before  # nothing was sent


def test_a_batch_is_refused_as_a_whole_from_the_models_recent_cost_per_job(priced_echo, monkeypatch):
    monkeypatch.setattr(_spend, "cost_per_job", lambda model: 0.01)  # the model's recent cost, as measured
    spent = _spend.spent("session")
    rp_notebook.budget(usd=spent + 0.035)
    before = len(get_manager().jobs())
    with pytest.raises(BudgetExceededError) as refused:
        rp_notebook.tts_many(["one", "two", "three", "four"])  # 4 x $0.01 > $0.035
    assert "4 tts jobs refused" in str(refused.value) and refused.value.estimate == pytest.approx(0.04)
    assert len(get_manager().jobs()) == before
    with pytest.warns(_spend.BudgetWarning, match=r"used this session with 3 tts jobs \([89]\d%\)"):
        batch = rp_notebook.tts_many(["one", "two", "three"])  # $0.03 of $0.035: sent, with a warning
    assert len(batch.results(timeout=120)) == 3


def test_a_budget_names_its_field_when_it_is_not_a_positive_amount():
    with pytest.raises(InputError, match="usd: the budget must be a number of dollars above 0"):
        rp_notebook.budget(usd=-1)
    with pytest.raises(InputError, match="per: must be 'session' or 'day'"):
        rp_notebook.budget(usd=1, per="week")
    assert rp_notebook.budget() is None


def test_budget_check_rule():
    limit = Budget(usd=1.0)
    assert limit.check(0.1, 0.1, 1) is None
    assert "90%" in (limit.check(0.8, 0.1, 1) or "")
    with pytest.raises(BudgetExceededError, match=r"about \$0.300"):
        limit.check(0.8, 0.1, 3)
    assert limit.check(0.5, None, 10) is None  # nothing known of its cost yet: sent


# -- %runpod cost and the endpoint's share -----------------------------------------------------------------


def _entry(job_id: str, worker: str, ended: float, execution: float, usd: float) -> LedgerEntry:
    cost = JobCost(usd, execution, 0.0, "ADA_24", ADA_24.flex_per_s, "2026-12-05", "test")
    return LedgerEntry(
        job_id,
        "ep",
        "http://x",
        "tts",
        "COMPLETED",
        ended - execution,
        ended,
        ended,
        {},
        None,
        None,
        worker_id=worker,
        execution_s=execution,
        cost=cost,
    )


def test_idle_time_after_each_job_is_the_endpoints_until_the_next_job_or_the_idle_timeout():
    entries = [
        _entry("a", "w1", ended=100.0, execution=1.0, usd=0.0),
        _entry("b", "w1", ended=103.0, execution=1.0, usd=0.0),  # started 2 s after a ended
        _entry("c", "w2", ended=100.0, execution=1.0, usd=0.0),  # w2's only job
    ]
    idle = _spend._idle_costs(entries, {"ep": 5.0}, now=1000.0)
    assert idle["ep"] == pytest.approx((2.0 + 5.0 + 5.0) * ADA_24.flex_per_s)


def test_active_workers_of_an_endpoint_deployed_here_cost_from_deploy_to_delete(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.record_endpoint_change("http://x", EndpointRates("ep", ("AMPERE_24",), workers_min=2))
    changes = ledger.endpoint_changes()
    deployed = changes[0].changed_at
    (usd, per_hour) = _spend._active_costs(changes, now=deployed + 1800)["ep"]
    assert per_hour == pytest.approx(2 * 0.00013 * 3600) and usd == pytest.approx(per_hour / 2)
    ledger.record_endpoint_change(
        "http://x", EndpointRates("ep", ("AMPERE_24",), workers_min=2), deleted=True
    )
    deleted_at = ledger.endpoint_changes()[-1].changed_at
    usd_after, now_per_hour = _spend._active_costs(ledger.endpoint_changes(), now=deleted_at + 3600)["ep"]
    assert now_per_hour is None and usd_after == pytest.approx(per_hour * (deleted_at - deployed) / 3600)


def test_cost_magic_lists_jobs_endpoints_days_and_this_notebooks_total(priced_echo, ip):
    job = get_manager().submit("echo", {"sleep": 0.1})
    job.result(timeout=60)
    shown = ip.run_line_magic("runpod", "cost")._repr_mimebundle_()
    text = shown["text/plain"]
    assert job.id in text and job.cost.short() in text and "Endpoints" in text and "Days" in text
    assert time.strftime("%Y-%m-%d") in text and "prices per GPU: Runpod's serverless pricing page" in text
    assert "every notebook and script: " in text
    assert "<h4" in shown["text/html"]


def test_budget_magic_sets_shows_and_removes_the_budget(ip):
    assert "no budget" in repr(ip.run_line_magic("runpod", "budget"))
    assert "budget $5.00 per day" in repr(ip.run_line_magic("runpod", "budget 5 --per day"))
    assert rp_notebook.budget() == Budget(5.0, "day")
    assert "budget removed" in repr(ip.run_line_magic("runpod", "budget off"))
    with pytest.raises(InputError, match="usd: a number of dollars"):
        ip.run_line_magic("runpod", "budget lots")


def test_gpus_magic_shows_flex_and_active_prices_per_second_and_hour_with_their_date(use_local, ip):
    text = ip.run_line_magic("runpod", "gpus")._repr_mimebundle_()["text/plain"]
    row = next(line for line in text.splitlines() if line.startswith("ADA_24 "))
    assert "$0.00031/s · $1.12/h" in row and "$0.00021/s · $0.76/h" in row
    assert "read 2026-12-05" in text and "ADA_32_PRO (not on Runpod's serverless pricing page)" in text


def test_a_panel_shows_the_budgets_refusal_in_its_status_line_and_sends_nothing(priced_echo):
    from rp_notebook.widgets import TTSPanel

    get_manager().submit("echo", {"sleep": 0.1}).result(timeout=60)
    rp_notebook.budget(usd=_spend.spent() * 0.5)
    panel = TTSPanel(text="Refused by the budget.")
    try:
        panel.generate_button.click()
        assert "refused" in panel.status.value and "per session" in panel.status.value
        assert panel.jobs == [] and panel.history.children == ()
    finally:
        panel.close()


def test_the_cli_cost_command_reads_the_ledger_of_earlier_runs(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    ledger = Ledger(tmp_path)
    cost = estimate_job_cost(
        execution_s=20, delay_s=0, cold_start=False, rates=EndpointRates("ep1", ("ADA_24",))
    )
    ledger.record_submitted(
        job_id="job-1", endpoint_id="ep1", base_url="http://x", model="tts", status="IN_QUEUE", parameters={}
    )
    ledger.record_status(
        job_id="job-1", endpoint_id="ep1", base_url="http://x", status="COMPLETED", ended=True, cost=cost
    )
    ledger.close()
    cli = Path(sys.executable).parent / "rp-notebook"
    env = {**os.environ, "RP_NOTEBOOK_DATA_DIR": str(tmp_path)}
    done = subprocess.run([str(cli), "cost"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("job-1"))
    assert "$0.0062" in row and "ran 20.0 s on ADA_24" in row  # 20 s x $0.00031/s


def test_an_endpoint_with_active_workers_shows_its_running_cost_and_its_spend_since_deploy(use_local, ip):
    deployed = ip.run_line_magic(
        "runpod", "deploy tts --name active-tts --gpu AMPERE_24 --workers-min 1 --workers-max 1"
    )
    endpoint_id = deployed.endpoint.id
    per_hour = RUNPOD_PRICES.prices["AMPERE_24"].active_per_hour  # one active worker, one GPU
    try:
        listed = ip.run_line_magic("runpod", "endpoints")._repr_mimebundle_()["text/plain"]
        row = next(line for line in listed.splitlines() if line.startswith(endpoint_id))
        assert f"{usd_text(per_hour)}/h" in row and "running cost" in listed
        report = rp_notebook.cost_report()
        spend = report.endpoints[endpoint_id]
        assert spend.running_per_hour == pytest.approx(per_hour) and spend.active_usd > 0
        assert spend.active_usd < per_hour  # deployed moments ago: a small share of an hour
    finally:
        ip.run_line_magic("runpod", f"delete endpoint {endpoint_id} --force")
    assert rp_notebook.cost_report().endpoints[endpoint_id].running_per_hour is None  # deleted: stopped


def test_the_local_endpoint_bills_by_the_price_table_it_is_given():
    mine = PriceTable({"ADA_24": PoolPrice("ADA_24", "4090", 24, 0.001, 0.0005)}, "2027-01-01", "my rates")
    server = rp_notebook.start_local(prices=mine)
    try:
        assert server.prices is mine and current_prices() is mine
    finally:
        rp_notebook.stop_local()
    assert current_prices() is RUNPOD_PRICES


def test_a_job_never_waits_for_its_endpoints_pools_and_is_priced_once_they_are_read(
    priced_echo, tmp_path, monkeypatch
):
    import threading

    from rp_notebook.jobs import _manager

    release = threading.Event()

    def slow_lookup(settings):  # the management API answering late (or a network timing out)
        def lookup(endpoint_id: str) -> EndpointRates:
            release.wait(60)
            return EndpointRates(endpoint_id, ("ADA_24",))

        return lookup

    monkeypatch.setattr(_manager, "endpoint_rates_lookup", slow_lookup)
    manager = JobManager(ledger=Ledger(tmp_path / "ledger"))
    try:
        job = manager.submit("echo", {"sleep": 0.1})
        job.result(timeout=60)  # resolves while the pools are still being read
        assert job.cost is not None and job.cost.usd is None and "not read yet" in job.cost.basis
        card = JobCard(job)
        assert "rp-job-cost" not in card.head.value
        release.set()
        eventually(lambda: job.cost is not None and job.cost.usd is not None, timeout=30)
        eventually(lambda: f"· {job.cost.short()}" in card.head.value, timeout=10)  # the card was told
        card.close()
        assert job.cost.pool == "ADA_24"
        assert job.cost.usd == pytest.approx((job.execution_time + job.cost.cold_start_s) * ADA_24.flex_per_s)
        manager.recorder.flush(timeout=10)
        (entry,) = Ledger(tmp_path / "ledger").find(job.id)
        assert entry.cost == job.cost  # the ledger has the late estimate, not the provisional one
    finally:
        release.set()
        manager.close()


def test_a_job_ending_just_after_its_endpoint_was_found_unlisted_is_not_left_waiting_for_a_price(monkeypatch):
    """The lookup's answer (None: the endpoint is not listed) is stored before its Future leaves
    the lookups under way; a job ending in between used to wait for a price that never came, its
    callback (and so its Job) kept for the session."""
    import gc
    import threading
    import weakref

    estimator = CostEstimator()
    answered, forgotten = threading.Event(), threading.Event()
    forget = estimator._forget_pending

    def forget_late(key, future):  # the window between the answer and the lookup's end, held open
        answered.set()
        forgotten.wait(30)
        forget(key, future)

    monkeypatch.setattr(estimator, "_forget_pending", forget_late)
    estimator.prepare("http://api", "ep1", lambda endpoint_id: None)
    try:
        assert answered.wait(30)
        calls: list[JobCost] = []

        def on_priced(cost: JobCost) -> None:
            calls.append(cost)

        ref = weakref.ref(on_priced)
        cost = estimator.job_ended(
            base_url="http://api",
            endpoint_id="ep1",
            worker_id="w1",
            delay_s=0.0,
            execution_s=1.0,
            on_priced=on_priced,
        )
        assert cost.usd is None and "does not list this endpoint" in cost.basis  # final already
        del on_priced
        gc.collect()
        assert ref() is None, "the job's pricing callback is still held, waiting for nothing"
    finally:
        forgotten.set()
        estimator.close()
    assert calls == []
