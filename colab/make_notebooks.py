"""Writes the Colab notebooks of this folder from their `.py` sources (jupytext percent format).

    python colab/make_notebooks.py             # write the notebooks without outputs
    python colab/make_notebooks.py --execute   # write them, run each in a scratch folder, keep the outputs

`01_quickstart.py` is the source of `01_quickstart.ipynb`, and so on: `# %%` starts a code cell,
`# %% [markdown]` a markdown cell. Edit the `.py` files, never the `.ipynb` files, and regenerate;
`tests/test_notebooks.py` checks that the committed notebooks have the cells their sources convert to.
The committed notebooks are the `--execute` versions, so that they show real outputs on GitHub and in
Colab before anyone runs them.

The sources stay valid Python, for linters: jupytext comments out IPython magics (`# %%time`,
`# !emoconf ...`) and uncomments them in the notebook, and the install cell, a `%pip` inside an `if`,
is commented out whole (`active="ipynb"`: it runs in the notebook only).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOKS = tuple(sorted(path.stem for path in HERE.glob("[0-9][0-9]_*.py")))
RUN_NOTE_PREFIX = "_Outputs:"  # the first cell's last line: which run the committed outputs come from
# TensorFlow's C++ start-up lines (oneDNN, "no CUDA drivers") go to the kernel's own stderr, as in Colab,
# instead of into the notebook's outputs.
KERNEL_ARGUMENTS = ["--IPKernelApp.capture_fd_output=False"]
METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
    "colab": {"provenance": [], "toc_visible": True},
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook `name` converted from `colab/{name}.py`, without outputs, with stable cell ids."""
    source = jupytext.read(HERE / f"{name}.py", fmt="py:percent")
    cells = []
    for index, cell in enumerate(source.cells):
        # Only the tags reach the notebook: jupytext's own cell metadata (`active`) means nothing in Colab.
        metadata = {"tags": cell.metadata["tags"]} if "tags" in cell.metadata else {}
        new_cell = nbformat.v4.new_code_cell if cell.cell_type == "code" else nbformat.v4.new_markdown_cell
        cells.append(new_cell(cell.source, metadata=metadata, id=f"cell-{index:02d}"))  # stable: no diff
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=METADATA)
    nbformat.validate(notebook)
    return notebook


def run_note() -> str:
    cpus = os.cpu_count() or 1
    today = datetime.date.today().isoformat()
    return f"{RUN_NOTE_PREFIX} from a run on a {cpus}-core CPU machine (no GPU), {today}, at the default parameters._"


def set_run_note(notebook: nbformat.NotebookNode, note: str) -> None:
    first = notebook.cells[0]
    lines = [line for line in first.source.splitlines() if not line.startswith(RUN_NOTE_PREFIX)]
    first.source = "\n".join(lines).rstrip() + "\n\n" + note


def execute(notebook: nbformat.NotebookNode, timeout: int = 1800) -> float:
    """Runs `notebook` in place in a scratch working directory; returns the seconds it took."""
    from nbclient import NotebookClient

    scratch = Path(tempfile.mkdtemp(prefix="emoconf-notebook-"))
    try:
        start = time.perf_counter()
        NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", record_timing=False,
            extra_arguments=KERNEL_ARGUMENTS, resources={"metadata": {"path": str(scratch)}},
        ).execute()
        return time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Writes `notebook` to a temporary file beside `path`, then renames it: never a half-written notebook."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        nbformat.write(notebook, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="notebooks to write (default: all)")
    parser.add_argument("--execute", action="store_true", help="run each notebook and keep its outputs")
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in NOTEBOOKS]
    if unknown:
        parser.error(f"unknown notebook(s) {', '.join(unknown)}; choose from {', '.join(NOTEBOOKS)}")
    for name in args.names or NOTEBOOKS:
        notebook = build(name)
        if args.execute:
            seconds = execute(notebook)
            set_run_note(notebook, run_note())
            print(f"{name}: ran in {seconds:.0f} s")
        path = HERE / f"{name}.ipynb"
        write(notebook, path)
        print(f"wrote {path.relative_to(HERE.parent)} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
