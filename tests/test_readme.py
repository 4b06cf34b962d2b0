"""The README's Python example runs as written and gives the in-memory answer."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from smem_dask import SMEMClassifier, make_problem

README = Path(__file__).resolve().parents[1] / "README.md"


def _run_example(section: str, tmp_path):
    """The first Python block of a README section, run as a script in ``tmp_path``: (code, process)."""
    code = re.search(rf"## {section}\n.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "example.py").write_text(code)
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return code, proc


def test_readme_python_example_runs(tmp_path):
    _, proc = _run_example("Python", tmp_path)
    # the streamed fit printed its iterations and its final objective equals the in-memory fit
    last = [line for line in proc.stdout.splitlines() if line.startswith("iter")][-1]
    F = float(re.search(r"F=([0-9.]+)", last).group(1))
    X, y = make_problem(200_000, 20, cond=1e6, seed=0)
    assert F == pytest.approx(SMEMClassifier(alpha=1e-4).fit(X, y).objective_, abs=1e-12)
    assert (tmp_path / "data.zarr").is_dir()


def test_readme_sklearn_example_runs(tmp_path):
    code, proc = _run_example("scikit-learn", tmp_path)
    namespace = {}
    exec(compile(code.replace("print(", "("), "readme", "exec"), namespace)  # the same search in-process
    search = namespace["search"]
    assert proc.stdout.strip() == f"{search.best_params_} {round(search.best_score_, 4)}"


def test_readme_standard_errors_example_runs(tmp_path):
    """The standard-errors example prints the table shown under it (Stata's numbers for Spector)."""
    _, proc = _run_example("Standard errors", tmp_path)
    shown = re.search(r"## Standard errors\n.*?```python\n.*?```\n\n```\n(.*?)```", README.read_text(),
                      re.S).group(1)
    assert proc.stdout.startswith(shown), proc.stdout


def test_readme_offsets_example_runs(tmp_path):
    _, proc = _run_example("Offsets", tmp_path)
    assert proc.stdout.split() == ["True", "True"], proc.stdout


def test_readme_tabular_data_example_runs(tmp_path):
    _, proc = _run_example("Tabular data", tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[0] == ("['age', 'region[east]', 'region[north]', 'region[south]', 'region[west]', "
                        "'plan[basic]', 'plan[plus]']")
    assert lines[1] == "True"
