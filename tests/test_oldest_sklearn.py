"""The scikit-learn contract on the oldest scikit-learn we support.

The lower bound of scikit-learn in ``pyproject.toml`` is installed into a virtual environment that
sees this environment's other packages, and ``tests/test_sklearn.py`` (``check_estimator``, model
selection, DataFrames) runs there in a subprocess. The environment is kept between runs under
``~/.cache/smem_dask-tests`` (it needs the package index the first time).
"""

import os
import re
import subprocess
import sys
import venv
from importlib.metadata import requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _oldest_sklearn() -> str:
    """The version that pyproject's ``scikit-learn>=X`` names (the installed metadata says the same)."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.findall(r'"scikit-learn>=([0-9.]+)"', text)
    assert found, "pyproject.toml names no lower bound for scikit-learn"
    assert any(r.replace(" ", "").startswith(f"scikit-learn>={found[0]}") for r in requires("smem-dask")), \
        "the installed smem-dask metadata disagrees with pyproject.toml: reinstall with pip install -e ."
    return found[0]


def _environment(version: str) -> Path:
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "smem_dask-tests"
    env = home / f"sklearn-{version}-py{sys.version_info.major}{sys.version_info.minor}"
    python = env / "bin" / "python"
    probe = [str(python), "-c", "import sklearn; print(sklearn.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == version:
        return python
    venv.EnvBuilder(system_site_packages=True, clear=True, with_pip=True).create(env)
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           f"scikit-learn=={version}"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"could not install scikit-learn=={version}:\n{done.stderr[-3000:]}"
    return python


def test_sklearn_contract_on_the_oldest_supported_version():
    version = _oldest_sklearn()
    python = _environment(version)
    shown = subprocess.run([str(python), "-c", "import sklearn; print(sklearn.__version__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert shown == version
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "test_sklearn.py")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    tail = run.stdout[-4000:]
    assert run.returncode == 0, f"tests/test_sklearn.py under scikit-learn {version}:\n{tail}\n{run.stderr[-2000:]}"
    assert re.search(r"\d+ passed", tail) and " failed" not in tail
