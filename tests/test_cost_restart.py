"""Costs survive a kernel restart: a job priced in one kernel is in the next one's %runpod cost and
%runpod jobs, and a daily budget counts it (the job ledger is where both read them).

Real kernels (jupyter_client), the session's local endpoint over HTTP, an endpoint deployed with
%runpod deploy onto an RTX A5000/L4/3090 pool (AMPERE_24), so its jobs are priced by Runpod's table.
"""

from __future__ import annotations

import json
import os

import pytest
from jupyter_client.manager import start_new_kernel
from test_kernel import run, stdout_of


def _kernel(env: dict[str, str]):
    return start_new_kernel(kernel_name="python3", env={**os.environ, **env})


@pytest.mark.timeout(300)
def test_job_costs_and_the_daily_budget_survive_a_kernel_restart(local_server, tmp_path):
    env = {
        "RUNPOD_API_KEY": local_server.api_key,
        "RUNPOD_ENDPOINT_BASE_URL": local_server.job_api_url,
        "RUNPOD_API_BASE_URL": local_server.management_url,
        "RP_NOTEBOOK_DATA_DIR": str(tmp_path / "data"),
    }
    km, kc = _kernel(env)
    try:
        out = stdout_of(
            run(
                kc,
                "%load_ext rp_notebook\n"
                "import json\n"
                "deployed = %runpod deploy tts --name restart-tts --gpu AMPERE_24 --workers-max 1\n"
                "job = %runpod tts 'Priced before the restart.'\n"
                "job.result(timeout=120)\n"
                "print(json.dumps({'id': job.id, 'cost': job.cost.short(), 'pool': job.cost.pool,"
                " 'endpoint': deployed.endpoint.id}))",
                timeout=200,
            )
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    first = json.loads(out.strip().splitlines()[-1])
    assert first["pool"] == "AMPERE_24" and first["cost"].startswith("$")

    km, kc = _kernel(env)
    try:
        run(kc, "%load_ext rp_notebook")
        cost = stdout_of(run(kc, "report = %runpod cost\nprint(report._repr_mimebundle_()['text/plain'])"))
        assert first["id"] in cost and first["cost"] in cost and first["endpoint"] in cost
        jobs = stdout_of(run(kc, "listed = %runpod jobs\nprint(listed._repr_mimebundle_()['text/plain'])"))
        row = next(line for line in jobs.splitlines() if line.startswith(first["id"]))
        assert first["cost"] in row
        # Today's spend is read from the ledger: a daily budget below it refuses the next job.
        refused = stdout_of(
            run(
                kc,
                "%runpod budget 0.000001 --per day\n"
                "from rp_notebook.errors import BudgetExceededError\n"
                "try:\n"
                f"    %runpod tts 'Not sent.' --endpoint {first['endpoint']}\n"
                "except BudgetExceededError as exc:\n"
                "    print('refused:', exc, exc.spent)",
            )
        )
        assert "refused: 1 tts job refused" in refused and "spent today" in refused
        run(kc, f"%runpod delete endpoint {first['endpoint']} --force")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
