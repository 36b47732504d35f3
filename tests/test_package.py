"""The public surface, and that importing it stays light."""

import subprocess
import sys

import rp_notebook


def test_public_names_are_exactly_the_documented_ones():
    assert sorted(rp_notebook.__all__) == sorted(
        [
            "AudioResult",
            "Batch",
            "Job",
            "JobManager",
            "JobStatus",
            "JobsClient",
            "LayersResult",
            "MODELS",
            "__version__",
            "configure",
            "current_settings",
            "errors",
            "get_manager",
            "layers",
            "layers_many",
            "load_ipython_extension",
            "panel",
            "start_local",
            "stop_local",
            "submit",
            "tts",
            "tts_many",
            "unload_ipython_extension",
        ]
    )
    assert set(rp_notebook._EXPORTS) <= set(rp_notebook.__all__)
    for name in rp_notebook.__all__:
        assert getattr(rp_notebook, name) is not None


def test_import_and_load_ext_do_not_import_runpod_aiohttp_torch_or_the_local_server():
    code = (
        "import sys, rp_notebook\n"
        "from IPython.testing.globalipapp import get_ipython\n"
        "ip = get_ipython(); ip.run_line_magic('load_ext', 'rp_notebook'); ip.run_line_magic('runpod', '')\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('runpod', 'aiohttp', 'torch', 'diffusers')"
        " or m.startswith('rp_notebook.local')]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
