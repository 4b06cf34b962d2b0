"""Every golden case (``tests/golden_cases.py``) gives bitwise the results recorded before the solver and
engine were restructured: coefficients, intercepts, objectives (and the objective history of fits),
iteration and pass counts, convergence."""

import json

import numpy as np
import pytest
from golden_cases import CASES, GOLDEN, run_case

RECORDED = json.loads(GOLDEN.read_text())


def test_the_recorded_cases_are_the_cases():
    assert sorted(RECORDED) == sorted(CASES)


def _floats(hexes):
    return np.array([float.fromhex(h) for h in hexes])


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    now, then = run_case(name), RECORDED[name]
    assert sorted(now) == sorted(then)
    for field in sorted(then):
        if isinstance(then[field], list) and then[field] and isinstance(then[field][0], str):
            a, b = _floats(now[field]), _floats(then[field])
            assert a.shape == b.shape, (field, a.shape, b.shape)
            # bitwise; on failure the message says by how much
            assert now[field] == then[field], (field, float(np.max(np.abs(a - b)) if a.size else 0.0))
        else:
            assert now[field] == then[field], field
