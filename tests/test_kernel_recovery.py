"""A kernel killed (SIGKILL) with jobs in flight loses nothing: a new kernel gets every result back.

The local endpoint runs in the test process, so it outlives the kernels, as Runpod does. The first
kernel submits jobs that cannot finish yet (echo jobs waiting for a file) and jobs that may finish
before or after the kill (speech, layers); it is killed; the blocked jobs are released while no
kernel is alive; a second kernel runs `%runpod attach --all` and `%runpod attach ID`.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from helpers import eventually
from jupyter_client.manager import start_new_kernel
from test_kernel import run, stdout_of

from rp_notebook.jobs._ledger import Ledger


def _kernel(env: dict[str, str]):
    return start_new_kernel(kernel_name="python3", env={**os.environ, **env})


@pytest.mark.timeout(300)
def test_a_killed_kernel_loses_no_job_and_a_new_one_recovers_every_result(local_server, tmp_path):
    release = tmp_path / "release"
    data_dir = tmp_path / "data"
    env = {
        "RUNPOD_API_KEY": local_server.api_key,
        "RUNPOD_ENDPOINT_BASE_URL": local_server.job_api_url,
        "RP_NOTEBOOK_TTS_ENDPOINT": "local-tts",
        "RP_NOTEBOOK_LAYERS_ENDPOINT": "local-layers",
        "RP_NOTEBOOK_DATA_DIR": str(data_dir),
    }
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.new("RGB", (96, 64), (20, 120, 220)).save(photo)

    km, kc = _kernel(env)
    try:
        run(kc, "%load_ext rp_notebook\nfrom rp_notebook.jobs import get_manager")
        submitted = stdout_of(
            run(
                kc,
                f"blocked = [get_manager().submit('echo', {{'wait_for_file': {str(release)!r}, 'n': n}})"
                " for n in range(3)]\n"
                "speech = %runpod tts 'Spoken while the kernel dies.'\n"
                f"split = %runpod layers {photo} --layers 3\n"
                "import json\n"
                "import os\n"
                "print(json.dumps({'echo': [j.id for j in blocked], 'tts': speech.id, 'layers': split.id,"
                " 'pid': os.getpid()}))",
            )
        )
        ids = json.loads(submitted.strip().splitlines()[-1])
        os.kill(ids.pop("pid"), signal.SIGKILL)  # no atexit, no cleanup, poll threads gone mid-request
        eventually(lambda: not km.is_alive(), timeout=30)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    release.touch()  # the blocked jobs finish while no kernel is alive

    km, kc = _kernel(env)
    try:
        run(kc, "%load_ext rp_notebook")
        recovered = stdout_of(
            run(
                kc,
                "import json\njobs = %runpod attach --all\nprint(json.dumps([j.id for j in jobs]))",
            )
        )
        in_flight_at_restart = set(json.loads(recovered.strip().splitlines()[-1]))
        assert set(ids["echo"]) <= in_flight_at_restart  # nothing followed them to their end
        check = stdout_of(
            run(
                kc,
                f"ids = {json.dumps(ids)}\n"
                "echo = []\n"
                "for i in ids['echo']:\n"
                "    job = %runpod attach {i}\n"
                "    echo.append(job.result(timeout=120)['echo']['n'])\n"
                "speech = %runpod attach {ids['tts']}\n"
                "split = %runpod attach {ids['layers']}\n"
                "audio, layers = speech.result(timeout=120), split.result(timeout=120)\n"
                "print(echo, type(audio).__name__, audio.duration > 0, type(layers).__name__, len(layers))",
                timeout=200,
            )
        )
        assert check.split() == ["[0,", "1,", "2]", "AudioResult", "True", "LayersResult", "3"]
        listed = run(kc, "%runpod jobs")
        table = next(m for m in listed if m["msg_type"] == "execute_result")["content"]["data"]["text/plain"]
        for job_id in [*ids["echo"], ids["tts"], ids["layers"]]:
            assert job_id in table
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    results = data_dir / "results"
    assert (results / ids["tts"] / "speech.wav").stat().st_size > 1000
    assert len(list((results / ids["layers"]).glob("layer_*.png"))) == 3
    ledger = Ledger(data_dir)  # the JSON outputs are kept in the ledger itself
    try:
        for job_id in ids["echo"]:
            (entry,) = ledger.find(job_id)
            assert json.loads(entry.output)["echo"]["wait_for_file"] == str(release)
    finally:
        ledger.close()
