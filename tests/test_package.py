"""The package namespace: every public name of ``smem_dask.__all__`` is there (imported on first
use), and importing the package or its command line loads none of dask.array, zarr, scikit-learn
or distributed (issue 14: a refused command line costs well under 2 s)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import smem_dask

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("dask.array", "sklearn", "zarr", "distributed")


def _fresh_python(code: str) -> str:
    """What ``code`` prints in a new interpreter (this package first on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=env, check=True).stdout


def test_every_public_name_resolves_and_is_listed_by_dir():
    names = dir(smem_dask)
    assert len(set(smem_dask.__all__)) == len(smem_dask.__all__)
    for name in smem_dask.__all__:
        assert name in names
        assert getattr(smem_dask, name) is not None, name
    namespace = {}
    exec(f"from smem_dask import {', '.join(smem_dask.__all__)}", namespace)  # the usual spelling
    assert all(namespace[n] is getattr(smem_dask, n) for n in smem_dask.__all__)
    assert smem_dask.SMEMClassifier.__module__ == "smem_dask.estimators"
    assert "F(β, b)" in smem_dask.__doc__  # the docstring states the objective


def test_a_fresh_import_is_light_and_resolves_every_name_on_first_use():
    code = f"""
import json, sys, smem_dask
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
listed = sorted(set(smem_dask.__all__) - set(dir(smem_dask)))
missing = [n for n in smem_dask.__all__ if getattr(smem_dask, n, None) is None]
print(json.dumps([heavy, listed, missing, smem_dask.SMEMRegressor.__name__]))
"""
    assert json.loads(_fresh_python(code)) == [[], [], [], "SMEMRegressor"]


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="smem_dask.*no attribute 'SMEMNothing'"):
        smem_dask.SMEMNothing  # noqa: B018
    with pytest.raises(ImportError):
        exec("from smem_dask import SMEMNothing", {})


def test_importing_the_command_line_loads_no_dask_array_zarr_sklearn_or_distributed():
    code = f"import sys, smem_dask.cli; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    assert _fresh_python(code).strip() == "[]"
