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


def test_newton_reference_optimum_matches_scikit_learn():
    """F* of the paper benchmark (Newton) against scikit-learn's newton-cholesky at tight tolerance."""
    import warnings

    import numpy as np
    import pytest
    from sklearn.linear_model import LogisticRegression

    from benchmarks.competitors import newton_optimum, objective
    from smem_dask.data import make_problem

    X, y = make_problem(2000, 15, cond=1e6, seed=4)
    alpha = 1e-4
    F_star, theta = newton_optimum(X, y, alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = LogisticRegression(C=1 / (alpha * len(y)), solver="newton-cholesky", tol=1e-14,
                                 max_iter=1000).fit(X, y)
    F_ref = objective(X, y, alpha, np.r_[ref.coef_.ravel(), ref.intercept_])[0]
    assert F_star == pytest.approx(F_ref, rel=1e-14, abs=0)
    assert F_star <= F_ref + 1e-16
    assert np.max(np.abs(objective(X, y, alpha, theta)[1])) < 1e-14


def test_paper_benchmark_quick(tmp_path):
    import pytest

    pytest.importorskip("torch", reason="the paper benchmark needs the bench extra (torch, momo-opt)")
    pytest.importorskip("momo", reason="the paper benchmark needs the bench extra (torch, momo-opt)")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "paper", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "paper.md").read_text()
    assert "- command: `python -m benchmarks paper --quick" in text
    tables = [t for t in _table(text) if t[0] == "20" and len(t) == 13]
    assert len(tables) == 2  # one row per condition number
    for row in tables:
        # SM-EM reaches F* to the resolution of F within 100 passes; tuned Adam is ≥ 13× worse
        assert row[2].startswith("≤") and row[3].startswith("≤") and row[4].startswith("≤")
        assert min(float(v) for v in row[10:13]) >= 13
    path_rows = {r[0]: r for r in _table(text) if len(r) == 5}
    smem = path_rows["SM-EM path (shared statistics, lockstep)"]
    adam = next(r for name, r in path_rows.items() if name.startswith("tuned Adam protocol"))
    assert float(adam[3]) >= 10  # wall time ÷ SM-EM path
    assert float(smem[4]) <= 1e-12  # the SM-EM path is at the best objective of the four
    assert (tmp_path / "paper_convergence.png").stat().st_size > 10_000


def median_of(cell: str) -> float:
    return float(cell.split()[0])


def test_scale_benchmark_quick_streams_from_zarr_and_finds_the_optimum(tmp_path):
    """The scale benchmark's --quick run (two small zarr stores, a LocalCluster of two worker
    processes, SM-EM streamed from the store): every SM-EM mode reaches F within 1e-8 of F*, and
    F* is scikit-learn newton-cholesky's optimum to 1e-8 (the independent oracle); the workers stay
    under their memory limit; every pass kind was timed. The "Done when" table reads the auto fit
    from the store; the Poisson and negative binomial section shows auto (newton) taking fewer
    passes than the E-step."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "scale", "--quick", "--persist", "stream",
                           "--out", str(tmp_path), "--data", str(tmp_path / "data")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "scale.md").read_text()
    assert "- command: `python -m benchmarks scale --quick" in text and "- machine: " in text
    tables = text.split("## ")
    passes = _table(next(t for t in tables if t.startswith("Passes")))
    assert [(r[0], r[1]) for r in passes] == [("3e+04", "20"), ("1e+05", "20")]
    for r in passes:
        read, syrk, limit, em = map(float, r[3:7])
        assert 0 < read and 0 < syrk and 0 < limit and 0 < em
        # the ratio column is EM / limit before rounding: within the display rounding of the
        # seconds (±5e-4) and of the ratio itself (±5e-3)
        low, high = (em - 5e-4) / (limit + 5e-4), (em + 5e-4) / (limit - 5e-4)
        assert low - 5e-3 <= float(r[7]) <= high + 5e-3
    methods = _table(next(t for t in tables if t.startswith("Time to the optimum")))
    smem = [r for r in methods if r[2].startswith("SM-EM")]
    assert len(smem) == 2 * 12  # 8 dask modes (auto from zarr and streamed, newton, 5 more) + 4 numpy
    for r in smem:
        assert r[3] != "—" and float(r[7]) <= 1e-12, r  # reached, and F* is its own optimum
        # bytes read ÷ bytes of X: the passes, plus the persist's read when persisted
        assert int(r[5]) == int(r[4]) + ("persisted" in r[8]), r
    auto = {r[2]: r for r in smem if r[2].startswith("SM-EM auto")}
    assert {k for k in auto} == {"SM-EM auto (dask, from zarr)", "SM-EM auto (dask, streamed)",
                                 "SM-EM auto (numpy)"}
    assert all(r[8].startswith("newton") for r in auto.values())  # auto is newton for logistic
    plain = [r for r in methods if r[2] == "plain Newton on our engine (dask)"]
    assert len(plain) == 2 and all(float(r[7]) <= 1e-12 for r in plain)
    newton = [r for r in methods if r[2] == "scikit-learn newton-cholesky"]
    assert len(newton) == 2 and all(float(r[7]) <= 1e-8 for r in newton)
    done = _table(next(t for t in tables if t.startswith("Done when")))
    assert [(r[0], r[1]) for r in done] == [("3e+04", "20"), ("1e+05", "20")]
    for r, size in zip(done, ("3e+04", "1e+05"), strict=True):
        mine = next(m for m in smem if m[0] == size and m[2] == "SM-EM auto (dask, from zarr)")
        assert r[2].split()[0] == mine[4] and int(mine[4]) <= 6  # passes to 1e-8
        assert r[9] == "yes"  # the auto history never rises
        # --quick runs two rounds of the timed fits: the median (of two: their mean) and the
        # range, which holds the first round's time (the Time to the optimum table's)
        for col, name in ((3, "SM-EM auto (dask, from zarr)"), (4, "scikit-learn newton-cholesky")):
            median, low, high = map(float, re.fullmatch(r"(\S+) \((\S+)–(\S+)\)", r[col]).groups())
            first = float(next(m for m in methods if m[0] == size and m[2] == name)[3])
            assert low <= median <= high and low * 0.999 <= first <= high * 1.001, (r, first)
        ratio = float(r[5].split()[0])  # auto ÷ newton-cholesky: of the medians
        assert abs(ratio - median_of(r[3]) / median_of(r[4])) <= 5e-3 + 0.01 * ratio
    counts = _table(next(t for t in tables if t.startswith("Poisson and negative binomial")))
    rows = {(r[0], r[1]): r for r in counts}
    for loss in ("poisson", "negbin"):
        before, after = rows[(loss, "SM-EM adaptive")], rows[(loss, "SM-EM auto (= newton)")]
        assert int(after[2]) < int(before[2]) and int(after[2]) <= 6
        assert float(rows[(loss, "statsmodels GLM (IRLS)")][6]) <= 1e-8
    for r in _table(next(t for t in tables if t.startswith("Ratios"))):
        peaks, limit = r[9].split(" (")
        assert max(map(float, peaks.split(", "))) < float(limit.rstrip(")"))
    assert (tmp_path / "scale.png").stat().st_size > 10_000


def test_chunks_benchmark_quick_reports_every_store_and_its_true_size(tmp_path):
    """The chunks benchmark's --quick run: one row per (chunk size, codec); the byte ratios are the
    stores' chunk files as found on disk here, codecs and chunk rows as zarr reports them; the
    reference row's ratios are 1."""
    import zarr

    proc = subprocess.run([sys.executable, "-m", "benchmarks", "chunks", "--quick", "--out", str(tmp_path),
                           "--data", str(tmp_path / "data")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "chunks.md").read_text()
    assert "- command: `python -m benchmarks chunks --quick" in text and "page cache" in text
    rows = {(r[0], r[3]): r for r in _table(text)}
    assert set(rows) == {("0.5", "none"), ("0.5", "zstd"), ("2", "none"), ("2", "zstd")}
    raw = 50_000 * 20 * 8
    found = set()
    for store in (tmp_path / "data").iterdir():
        X = zarr.open_group(str(store), mode="r")["X"]
        codec = "none" if not X.compressors else X.compressors[0].to_dict()["name"]
        size = sum(f.stat().st_size for f in (store / "X").rglob("*")
                   if f.is_file() and f.name != "zarr.json")
        row = rows[("0.5" if X.chunks[0] == 3_125 else "2", codec)]
        assert int(row[1].replace(",", "")) == X.chunks[0]
        assert abs(float(row[5]) - size / raw) <= 5e-4
        assert (size == raw) == (codec == "none")  # zstd did shrink random floats, if a little
        assert all(float(v.split()[0]) > 0 for v in row[6:9])
        found.add((row[0], codec))
    assert found == set(rows)
    assert rows[("2", "none")][9:] == ["1.00", "1.00", "1.00"]  # the reference
    assert (tmp_path / "chunks.png").stat().st_size > 10_000



def test_cv_benchmark_quick_compares_every_method_on_the_same_folds():
    """The cv benchmark's --quick run (in memory, and streamed from a zarr store by a LocalCluster
    of two worker processes): a row per method; our CV takes fewer passes than the K + 1 separate
    paths, which reach the same held-out losses and coefficients; scikit-learn's newton-cholesky
    CV scores the same folds as ours and selects our α_min. Without --out it writes into a
    temporary directory, never over the published results."""
    published = os.path.join(ROOT, "benchmarks", "results", "cv.md")
    before = os.path.getmtime(published) if os.path.exists(published) else None
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "cv", "--quick"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    md = re.search(r"wrote (.*cv\.md)", proc.stdout).group(1)
    assert os.path.dirname(os.path.abspath(md)) != os.path.dirname(published)
    assert (os.path.getmtime(published) if os.path.exists(published) else None) == before
    with open(md) as fh:
        text = fh.read()
    assert "- command: `python -m benchmarks cv --quick" in text and "- machine: " in text
    assert "- date: " in text and "load average" in text
    sections = text.split("\n## ")
    memory = next(s for s in sections if s.startswith("In memory")).split("\n### ")[0]
    stream = next(s for s in sections if s.startswith("Streamed")).split("\n### ")[0]
    rows = {(r[0], r[1]): r for r in _table(memory)}
    for penalty in ("ridge", "lasso"):
        ours = rows[(penalty, "our CV, adaptive curvature")]
        assert ours[4:6] == ["1.00", "1.00"] and "all 120 fits converged" in ours[7]
        for curvature in ("adaptive", "fixed", "cached"):
            cv = rows[(penalty, f"our CV, {curvature} curvature")]
            separate = rows[(penalty, f"6 separate SM-EM paths, {curvature} curvature")]
            assert int(cv[2]) * 3 < int(separate[2])  # the lockstep CV saves passes
            assert separate[6] == cv[6]  # the same α selected
            held_out, coefs = (float(v.split("max diff ")[1].split(";")[0])
                               for v in separate[7].split("; coefficients"))
            assert held_out < 1e-6 and coefs < 1e-5 and "NOT" not in separate[7]
    newton = rows[("ridge", "scikit-learn LogisticRegressionCV (newton-cholesky)")]
    assert "the same α as our α_min" in newton[7]
    assert newton[6] == rows[("ridge", "our CV, adaptive curvature")][6]
    assert float(newton[7].split("held-out loss vs ours: max diff ")[1].split(";")[0]) < 1e-6
    assert ("lasso", "scikit-learn LogisticRegressionCV (saga)") in rows
    streamed = {(r[0], r[1]): r for r in _table(stream)}
    for penalty in ("ridge", "lasso"):
        cv = streamed[(penalty, "our CV, adaptive curvature")]
        separate = streamed[(penalty, "6 separate SM-EM paths, adaptive curvature")]
        assert int(cv[2]) * 3 < int(separate[2]) and float(separate[5]) > 3
        assert float(separate[8].split("max diff ")[1]) < 1e-5
    assert os.path.getsize(os.path.join(os.path.dirname(md), "cv.png")) > 10_000


def test_beyond_ram_benchmark_quick_times_every_pass_against_the_disk(tmp_path):
    """The beyond_ram benchmark's --quick run (a 0.1 GB store per dtype, written, read, fitted by a
    LocalCluster of two worker processes, deleted): a result row per dtype with the disk's rate and
    every pass timed against it; each streamed fit converged, with the page cache emptied before
    each pass, and equals the same fit in memory; the workers stayed under their limits; the
    stores are gone afterwards."""
    data = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "beyond_ram", "--quick",
                           "--out", str(tmp_path), "--data", str(data)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "beyond_ram.md").read_text()
    assert "- command: `python -m benchmarks beyond_ram --quick" in text and "- machine: " in text
    sections = text.split("\n## ")
    result = _table(next(s for s in sections if s.startswith("Result")))
    assert [r[0] for r in result] == ["float64", "float32"]
    for r in result:
        assert float(r[3]) > 0 and float(r[4]) > 0  # the disk's rate, the page-cache-filling read's
        passes = int(r[9])
        assert 2 <= passes <= 20 and r[10] == "yes"
        peaks, limit = r[12].split(" (")
        assert max(map(float, peaks.split(", "))) < float(limit.rstrip(")"))
    each = _table(next(s for s in sections if s.startswith("Each pass")))
    for dtype, r in zip(("float64", "float32"), result, strict=True):
        rows = [e for e in each if e[0] == dtype]
        assert len(rows) == int(r[9])  # every pass of the fit timed
        assert all(float(e[3]) > 0 and e[10] == "0.0%" for e in rows)  # nothing cached at its start
    assert re.search(r"float64 \d\.\de-1[0-9], float32 \d\.\de-1[0-9]", text)  # == the in-memory fit
    assert not list(data.glob("beyond_ram_*.zarr"))
    assert (tmp_path / "beyond_ram.png").stat().st_size > 10_000


def test_multinomial_benchmark_quick(tmp_path):
    """The multinomial benchmark's --quick run (2e4 × 8, 4 classes, a LocalCluster for the zarr
    fits): every SM-EM fit reaches F within 1e-8 of F* with a monotone history, and F* is also
    scikit-learn newton-cholesky's optimum (the independent oracle) to 1e-8; Newton takes at most 8
    passes, Böhning's bound more."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "multinomial", "--quick",
                           "--out", str(tmp_path), "--data", str(tmp_path / "data")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "multinomial.md").read_text()
    assert "- command: `python -m benchmarks multinomial --quick" in text and "- machine: " in text
    rows = {r[0]: r for r in _table(text)}
    assert set(rows) == {"SM-EM newton (numpy)", "SM-EM fixed (numpy)",
                         "SM-EM newton (from zarr, persist auto)", "SM-EM newton (streamed from zarr)",
                         "scikit-learn newton-cholesky", "scikit-learn lbfgs"}
    for name, row in rows.items():
        assert float(row[4]) <= 1e-8, name  # F − F*, relative
        if name.startswith("SM-EM"):
            assert row[5] == "yes" and "converged" in row[6] and "NOT" not in row[6], name
    newton = [int(rows[n][1]) for n in rows if n.startswith("SM-EM newton")]
    assert max(newton) <= 8 and int(rows["SM-EM fixed (numpy)"][1]) > max(newton)
    assert len(set(newton)) == 1  # the same iterates on every engine


def test_sparse_benchmark_quick(tmp_path):
    """The sparse benchmark's --quick run: the CSR and dense kernels give the same Gram (1e-12
    relative) at every density, and the 1% fits the same coefficients (1e-10)."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "sparse", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "sparse.md").read_text()
    assert "- command: `python -m benchmarks sparse --quick" in text and "- machine: " in text
    rows = _table(text[:text.index("## One-hot columns")])
    assert [float(r[0]) for r in rows] == [0.01, 0.1, 0.5]
    assert all(float(r[7]) <= 1e-12 for r in rows)
    assert "Crossover:" in text
    largest = re.search(r"largest coefficient difference ([0-9.e+-]+)", text).group(1).rstrip(".")
    assert float(largest) <= 1e-10
    # the frame's one-hot fit: encoded CSR by the estimator, the same coefficients as get_dummies' dense
    assert "## One-hot columns" in text and "| csr |" in text and "| dense |" in text
    onehot = text[text.index("## One-hot columns"):]
    largest = re.search(r"largest coefficient difference ([0-9.e+-]+)", onehot).group(1).rstrip(".")
    assert float(largest) <= 1e-10
