"""The scikit-learn contract on the oldest scikit-learn we support.

The lower bound of scikit-learn in ``pyproject.toml`` is installed into a virtual environment that
sees this environment's other packages, and ``tests/test_sklearn.py`` (``check_estimator``, model
selection, DataFrames) runs there in a subprocess. The environment is kept between runs under
``~/.cache/smem_dask-tests`` (it needs the package index the first time).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from importlib.metadata import requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _oldest_sklearn() -> str:
    """The version that pyproject's ``scikit-learn>=X`` names (the installed metadata says the same)."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.findall(r'"scikit-learn>=([0-9.]+)"', text)
    assert found, "pyproject.toml names no lower bound for scikit-learn"
    assert any(r.replace(" ", "").startswith(f"scikit-learn>={found[0]}") for r in requires("smem-dask")), \
        "the installed smem-dask metadata disagrees with pyproject.toml: reinstall with pip install -e ."
    return found[0]


def _works(python: Path, version: str) -> bool:
    """The environment imports its scikit-learn (built against this numpy) at ``version``."""
    probe = [str(python), "-c", "import sklearn.linear_model, sklearn; print(sklearn.__version__)"]
    return python.exists() and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == version


def _environment(version: str) -> Path:
    """A cached environment with scikit-learn ``version``: built in a temporary directory and renamed
    into place, so that concurrent runs never see (or wipe) a half-built one. (Used only through
    ``python -m``, which is independent of the directory's name.)"""
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "smem_dask-tests"
    env = home / f"sklearn-{version}-py{sys.version_info.major}{sys.version_info.minor}"
    if _works(env / "bin" / "python", version):
        return env / "bin" / "python"
    home.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=env.name + ".", dir=home))
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(build)
    done = subprocess.run([str(build / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", f"scikit-learn=={version}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"could not install scikit-learn=={version}:\n{done.stderr[-3000:]}"
    if env.exists():  # a broken or stale one: replaced
        shutil.rmtree(env, ignore_errors=True)
    try:
        build.rename(env)
    except OSError:  # another run put its environment there first
        shutil.rmtree(build, ignore_errors=True)
    assert _works(env / "bin" / "python", version), f"the environment at {env} does not import scikit-learn"
    return env / "bin" / "python"


def test_sklearn_contract_on_the_oldest_supported_version():
    version = _oldest_sklearn()
    python = _environment(version)
    shown = subprocess.run([str(python), "-c", "import sklearn; print(sklearn.__version__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert shown == version
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    run = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "test_sklearn.py")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    tail = run.stdout[-4000:]
    assert run.returncode == 0, f"test_sklearn.py under scikit-learn {version}:\n{tail}\n{run.stderr[-2000:]}"
    assert re.search(r"\d+ passed", tail) and " failed" not in tail
