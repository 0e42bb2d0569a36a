"""The Colab notebooks: each, converted from its `colab/NN_name.py` source (jupytext percent format), runs
top to bottom (tiny, through `EMOCONF_NB_*`); each has its badge and labels synthetic data; the sources are
valid Python and the committed `.ipynb` files have the cells `colab/make_notebooks.py` converts them to."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("jupytext")
if importlib.util.find_spec("ipykernel") is None:
    pytest.skip("ipykernel is needed to execute the notebooks (pip install ipykernel)", allow_module_level=True)

COLAB = Path(__file__).resolve().parents[1] / "colab"
NOTEBOOKS = ("01_quickstart", "02_your_corpus", "03_deploy")
TINY = {
    "EMOCONF_NB_SIZE": "300",
    "EMOCONF_NB_NUM_FEATURES": "12",
    "EMOCONF_NB_SEEDS": "1",
    "EMOCONF_NB_SEED": "0",
    "EMOCONF_NB_MAX_EPOCHS": "2",
}


def load(name: str):
    """The committed notebook `colab/{name}.ipynb`."""
    return nbformat.read(COLAB / f"{name}.ipynb", as_version=4)


def make_notebooks():
    """`colab/make_notebooks.py` as a module (colab/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_notebooks", COLAB / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outputs_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """`{name: (notebook, error)}`: each notebook converted from its `.py` source and run tiny top to bottom,
    the three at once (a kernel each).

    `error` is what executing it raised (nbclient's CellExecutionError names the cell), or None.
    """
    import asyncio

    from nbclient import NotebookClient

    async def execute_all():
        converter = make_notebooks()
        notebooks = {name: converter.build(name) for name in NOTEBOOKS}
        clients = [
            NotebookClient(
                notebook, timeout=600, kernel_name="python3",
                extra_arguments=["--IPKernelApp.capture_fd_output=False"],
                resources={"metadata": {"path": str(tmp_path_factory.mktemp(name))}},
            )
            for name, notebook in notebooks.items()
        ]
        errors = await asyncio.gather(*(client.async_execute() for client in clients), return_exceptions=True)
        return {name: (notebook, error if isinstance(error, BaseException) else None)
                for (name, notebook), error in zip(notebooks.items(), errors)}

    with pytest.MonkeyPatch.context() as patch:
        for key, value in TINY.items():
            patch.setenv(key, value)  # each kernel inherits this process's environment
        return asyncio.run(execute_all())


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_tiny_without_errors(name, executed):
    notebook, error = executed[name]
    if error is not None:
        raise error  # CellExecutionError, naming the cell, on the first error
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = outputs_text(notebook)
    assert "SYNTHETIC" in text
    assert "300 utterances" in text  # the parameter cell took EMOCONF_NB_SIZE


def test_committed_quickstart_shows_its_curves_and_table1():
    notebook = load("01_quickstart")
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the committed copy keeps its curves
    assert "f1 emoconfidnet (raw)" in outputs_text(notebook)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_starts_with_its_colab_badge(name):
    first = load(name).cells[0]
    assert first.cell_type == "markdown"
    url = f"https://colab.research.google.com/github/emoconf/emoconf-tf/blob/main/colab/{name}.ipynb"
    badge = "https://colab.research.google.com/assets/colab-badge.svg"
    assert first.source.startswith(f"[![Open In Colab]({badge})]({url})")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_labels_synthetic_data_and_states_its_run_time(name):
    first = load(name).cells[0].source
    assert "**SYNTHETIC DATA" in first
    assert "minutes on a 2-core CPU" in first
    assert "_Outputs: from a run on a" in first  # committed with real outputs


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_parameter_cell_reads_the_environment(name):
    cells = [c for c in load(name).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    for variable in ("SIZE", "NUM_FEATURES", "MAX_EPOCHS"):
        assert f'{variable} = int(os.environ.get("EMOCONF_NB_{variable}"' in cells[0].source


def test_make_notebooks_finds_every_source():
    assert make_notebooks().NOTEBOOKS == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_source_is_valid_python(name):
    # What linters read: jupytext comments the magics out (`# %%time`, `# !emoconf`); a magic as the only
    # statement of a block (the install cell's `%pip`) needs its cell ipynb-only (`# %% active="ipynb"`).
    path = COLAB / f"{name}.py"
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_matches_its_source(name):
    converter = make_notebooks()

    def content(notebook):
        """Cell types, sources and metadata, and the Colab metadata: not outputs or the first cell's run note."""
        cells = [(c.cell_type, c.source, c.metadata) for c in notebook.cells]
        lines = cells[0][1].splitlines()
        first = "\n".join(line for line in lines if not line.startswith(converter.RUN_NOTE_PREFIX))
        metadata = {key: notebook.metadata.get(key) for key in ("kernelspec", "colab")}
        return metadata, [(cells[0][0], first.rstrip(), cells[0][2])] + cells[1:]

    assert content(load(name)) == content(converter.build(name)), (
        f"colab/{name}.ipynb is out of date with colab/{name}.py: run `python colab/make_notebooks.py --execute {name}`"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_small(name):
    path = COLAB / f"{name}.ipynb"
    assert path.stat().st_size < 1_000_000
    json.loads(path.read_text(encoding="utf-8"))
