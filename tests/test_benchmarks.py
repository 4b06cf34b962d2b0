"""The benchmarks cannot rot: their quick modes run here and their tables are checked."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table(text: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row] for row in rows[1:]]  # without the header row


def test_path_benchmark_quick(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "path", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "path.md").read_text()
    assert "- command: `python -m benchmarks path --quick" in text and "- machine: " in text
    rows = {r[1]: r for r in _table(text)}
    assert set(rows) == {"40 independent cold fits", "sequential warm starts", "lockstep, 10 α per pass",
                         "lockstep, all 40 α per pass", "fixed curvature, sequential",
                         "fixed curvature, all 40 α per pass"}
    for row in rows.values():
        assert float(row[7]) <= 1e-8 and row[8] == "yes"  # every α agrees with its cold fit
    passes = {mode: int(r[2]) for mode, r in rows.items()}
    cold_last = passes["40 independent cold fits"] / float(rows["40 independent cold fits"][4])
    assert passes["lockstep, all 40 α per pass"] <= 4 * cold_last
    assert passes["lockstep, all 40 α per pass"] < passes["sequential warm starts"] / 5
    assert (tmp_path / "path.png").stat().st_size > 10_000
    assert re.search(r"wrote .*path\.md", proc.stdout)
