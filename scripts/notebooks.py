"""Execute tutorial notebooks.

    python scripts/notebooks.py run notebooks/01_quickstart.ipynb      # -> build/01_quickstart.ipynb (executed)
    python scripts/notebooks.py refresh notebooks/01_quickstart.ipynb  # re-record nbval's reference outputs

`refresh` executes the notebook and keeps outputs only in cells marked NBVAL_CHECK_OUTPUT: those are what
nbval compares in the test suite; every other output (players, job ids, ports) changes each run and would
only bloat the file.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHECKED = "NBVAL_CHECK_OUTPUT"


def execute(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(path.parent)}}).execute()
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
        if args.action == "run":
            target = Path("build") / path.name
            target.parent.mkdir(exist_ok=True)
            nbformat.write(notebook, target)
            print(f"executed: {target}")
            continue
        for cell in notebook.cells:
            if cell.cell_type == "code":
                if CHECKED not in cell.source:  # nbval wants checked cells to keep their count
                    cell.outputs = []
                    cell.execution_count = None
                cell.metadata.pop("execution", None)
        notebook.metadata.pop("widgets", None)  # widget state of this run: large and meaningless later
        nbformat.write(notebook, path)
        print(f"refreshed reference outputs: {path}")


if __name__ == "__main__":
    main()
