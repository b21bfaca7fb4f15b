"""The three notebooks run top to bottom on the synthetic default, and are committed as generated."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["DataCollection.ipynb", "DataVisualization.ipynb", "ModelingAndEvaluating.ipynb"]
SWITCHES = ("TUMORSCREEN_NOTEBOOK_DATA", "TUMORSCREEN_NOTEBOOK_SYNTHETIC_COUNT", "TUMORSCREEN_NOTEBOOK_EPOCHS")


@pytest.fixture(scope="module")
def notebook_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work folder for the three, so they share the synthetic set and prepared data as a user's would."""
    return tmp_path_factory.mktemp("notebook-work")


def test_committed_notebooks_are_what_the_generator_writes_and_have_no_outputs() -> None:
    result = subprocess.run([sys.executable, "scripts/make_notebooks.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code and all(not cell.outputs and cell.execution_count is None for cell in code), name


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name: str, notebook_work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    # The kernel inherits this environment: the synthetic default, this test's work folder, quiet TF.
    for switch in SWITCHES:
        monkeypatch.delenv(switch, raising=False)
    monkeypatch.setenv("TUMORSCREEN_NOTEBOOK_WORK", str(notebook_work))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    # "python3" is ipykernel's own kernelspec: this interpreter, i.e. the project's venv.
    client = NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    errors = [output for cell in code for output in cell.outputs if output.output_type == "error"]
    assert errors == []
    # Every code cell ran, and the last one drew a figure: the run reached the end.
    assert all(cell.execution_count for cell in code)
    assert any("application/vnd.plotly.v1+json" in output.get("data", {}) for output in code[-1].outputs)
