"""The public surface, that importing it stays light, and that its parts import in one direction."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rp_notebook

PACKAGE = Path(rp_notebook.__file__).parent


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
            "budget",
            "configure",
            "cost_report",
            "current_settings",
            "errors",
            "gallery_of",
            "get_manager",
            "layers",
            "layers_many",
            "load_ipython_extension",
            "panel",
            "spent",
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
    assert set(rp_notebook.__all__) <= set(dir(rp_notebook))  # tts_many & co are listed before first use


def _imports_between_parts() -> dict[str, set[str]]:
    """part -> the parts it imports (a part is a sub-package or a top-level module), lazy imports
    inside functions included; imports under `if TYPE_CHECKING:` are types only and left out."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        part = relative.parts[0].removesuffix(".py")
        if part == "__init__":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only = {
            id(node)
            for branch in ast.walk(tree)
            if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
            for node in ast.walk(branch)
        }
        package = list(relative.parts[:-1])
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or id(node) in type_only:
                continue
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = (
                    [*base, *(node.module or "").split(".")] if node.module else [*base, node.names[0].name]
                )
            elif (node.module or "").startswith("rp_notebook."):
                target = node.module.split(".")[1:]
            else:
                continue
            target = [t for t in target if t]
            if target and target[0].removesuffix(".py") not in (part, "__init__"):
                graph.setdefault(part, set()).add(target[0])
    return graph


def test_no_two_parts_of_the_package_import_each_other_even_lazily():
    graph = _imports_between_parts()
    circles = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for following in sorted(graph.get(node, ())):
            if following == start:
                circles.append(" -> ".join([*path, start]))
            elif following not in path and len(path) < 6:
                walk(start, following, [*path, following])

    for part in sorted(graph):
        walk(part, part, [part])
    assert circles == []
    assert not graph.get("jobs", set()) & {"display", "widgets", "views", "_api", "magics"}


@pytest.mark.parametrize(
    ("module", "never"),
    [
        (
            "rp_notebook.views._stream_player",
            ("rp_notebook.widgets", "rp_notebook.provisioning", "rp_notebook.jobs"),
        ),
        (
            "rp_notebook.jobs",
            ("rp_notebook.widgets", "rp_notebook.views", "rp_notebook.display", "ipywidgets"),
        ),
        (  # start_local()'s handle: the server runs in its child process, not in a kernel
            "rp_notebook.local._process",
            ("rp_notebook.local._server", "rp_notebook.local._jobs_api", "aiohttp"),
        ),
    ],
)
def test_a_leaf_loads_nothing_it_does_not_need(module, never):
    code = f"import sys, {module}\nprint(sorted(m for m in sys.modules if m.startswith({never!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


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
