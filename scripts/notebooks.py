"""Execute tutorial notebooks.

    python scripts/notebooks.py run notebooks/01_quickstart.ipynb      # -> build/01_quickstart.ipynb (executed)
    python scripts/notebooks.py refresh notebooks/01_quickstart.ipynb  # re-record nbval's reference outputs

`refresh` executes the notebook and saves it with every output, as a user's saved notebook would be
(rp_notebook.saved_notebooks.keep_static: job cards, players and galleries as static HTML, panels as one
line), so the tutorials read well on GitHub, nbviewer and Binder's first screen. nbval (--nbval-lax)
compares only the cells marked NBVAL_CHECK_OUTPUT; the other outputs (job ids, ports) may differ.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from rp_notebook.saved_notebooks import keep_static

FINAL_CELL = "from rp_notebook.views._job_view import refresh_job_outputs\nrefresh_job_outputs(wait=300)"


def execute(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    # A last cell records how the jobs shown ended: a headless run keeps only the output updates that
    # arrive while a cell runs. It is removed again before the notebook is written.
    notebook.cells.append(nbformat.v4.new_code_cell(FINAL_CELL))
    NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(path.parent)}}).execute()
    notebook.cells.pop()
    return notebook


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["run", "refresh"])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args()
    if args.action == "refresh":
        # Recording references is not the user's work: keep its jobs out of their ledger and config.
        for name in ("RP_NOTEBOOK_DATA_DIR", "RP_NOTEBOOK_CONFIG_DIR"):
            os.environ.setdefault(name, tempfile.mkdtemp(prefix="rp-notebook-refresh-"))
    for path in args.notebooks:
        notebook = execute(path)
        keep_static(notebook)  # what a notebook saved in JupyterLab holds
        if args.action == "run":
            target = Path("build") / path.name
            target.parent.mkdir(exist_ok=True)
            nbformat.write(notebook, target)
            print(f"executed: {target}")
            continue
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.metadata.pop("execution", None)
        notebook.metadata.pop("widgets", None)  # widget state of this run: large and meaningless later
        nbformat.write(notebook, path)
        print(f"refreshed reference outputs: {path}")


if __name__ == "__main__":
    main()
