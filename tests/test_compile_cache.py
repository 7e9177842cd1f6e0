"""The persistent compile cache: keyed so it is never stale, safe for parallel jobs.

Every `crampstats` command compiles into one directory per machine and per set of package
versions (:func:`crampstats.engine.compile_cache_dir`). These tests run real subprocesses on a
fresh cache: two compiling the same model at once, then later ones that must load from disk,
and ones whose model changed (a prior) that must compile anew. What was compiled or loaded is
read from Numba's own cache log (``NUMBA_DEBUG_CACHE``), not from timings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pymc as pm
import pytest

from crampstats import engine

#: Fit a small simulated trial with the engine; prints a hash of the posterior draws of log RR.
SCRIPT = """
import hashlib
import sys
import numpy as np
from crampstats.engine import use_compile_cache
use_compile_cache()
from crampstats.models import NBTotals
from crampstats.models.synthetic import simulate_parallel_trial
frame = simulate_parallel_trial(np.random.default_rng(3), {"placebo": 1.0, "quinine": 0.75}, 25)[0]
model = NBTotals({"prior_log_rr_sd": float(sys.argv[1])})
idata = model.fit(frame, seed=9, chains=1, cores=1, draws=100, tune=100)
draws = np.ascontiguousarray(idata["posterior"]["log_rr"].to_numpy())
print("LOGRR", hashlib.sha256(draws.tobytes()).hexdigest())
"""


def _run(cache: Path, prior_sd: float = 1.0) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"}
    env.update(CRAMPSTATS_CACHE_DIR=str(cache), NUMBA_DEBUG_CACHE="1")
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(prior_sd)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[str, set[str], set[str]]:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    fgraph = r"((?:numba_funcified_fgraph|logp_callback|expand_callback)-[0-9a-f]+)"
    saved = set(re.findall(rf"\[cache\] data saved to .*{fgraph}", out))
    loaded = set(re.findall(rf"\[cache\] data loaded from .*{fgraph}", out))
    return re.search(r"LOGRR (\S+)", out).group(1), saved, loaded


def test_the_cache_folder_is_keyed_by_the_compilers_versions(tmp_path, monkeypatch):
    first = engine.compile_cache_dir(tmp_path)
    assert first.parent == tmp_path and first.name.startswith("pytensor-")
    assert engine.compile_cache_dir(tmp_path) == first
    monkeypatch.setattr(engine, "version", lambda name: "0.0.1")
    assert engine.compile_cache_dir(tmp_path) != first
    monkeypatch.setenv("CRAMPSTATS_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert engine.compile_cache_dir().parent == tmp_path / "elsewhere"


def test_an_explicit_or_already_chosen_compile_directory_wins(monkeypatch, tmp_path):
    code = (
        "import os; from crampstats.engine import use_compile_cache; "
        "print(use_compile_cache()); import pytensor; print(use_compile_cache())"
    )
    env = {**os.environ, "PYTENSOR_FLAGS": f"floatX=float64,base_compiledir={tmp_path}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == [str(tmp_path), str(tmp_path)], out.stderr
    import pytensor  # in this session PyTensor is imported: its directory stays

    assert engine.use_compile_cache() == Path(pytensor.config.base_compiledir)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh cache that two processes filled at the same time."""
    root = tmp_path_factory.mktemp("cache")
    together = [_run(root), _run(root)]
    return root, [_finish(p) for p in together]


def test_two_processes_compiling_at_once_both_succeed_and_agree(cache):
    _, runs = cache
    (a, saved_a, _), (b, saved_b, _) = runs
    assert a == b
    saved = {name.split("-")[0] for name in saved_a | saved_b}  # went into the cache
    assert {"numba_funcified_fgraph", "logp_callback", "expand_callback"} <= saved


def test_a_later_process_loads_the_model_and_draws_the_same_posterior(cache):
    root, runs = cache
    value, saved, loaded = _finish(_run(root))
    assert value == runs[0][0]  # bit for bit: a warm cache changes no number
    assert saved == set() and loaded  # nothing compiled: the log density came from disk
    assert {name.split("-")[0] for name in loaded} >= {"logp_callback", "expand_callback"}
    (entries,) = list(root.glob("pytensor-*"))  # one folder for this set of versions
    assert list(entries.glob("**/*.nbi"))


def test_a_changed_prior_compiles_anew(cache):
    root, runs = cache
    value, saved, _ = _finish(_run(root, prior_sd=0.5))
    new = saved - (runs[0][1] | runs[1][1])  # new functions, never the cached ones
    # The log density's callback is new; the one that expands draws does not read the prior.
    assert "logp_callback" in {name.split("-")[0] for name in new}
    assert value != runs[0][0]


def _layout_model(rng: np.random.Generator, n: int) -> tuple[pm.Model, dict[str, np.ndarray]]:
    """A model whose data have every layout the callbacks read: 2-D, integer, boolean, 0-D."""
    data = {
        "X": rng.normal(size=(n, 3)),
        "idx": rng.integers(0, 2, n).astype("int32"),
        "keep": rng.random(n) < 0.8,
        "scale": np.array(1.5),
        "y": rng.normal(size=n),
    }
    with pm.Model() as model:
        X, idx, keep, scale, y = (pm.Data(name, value) for name, value in data.items())
        beta = pm.Normal("beta", 0, 1, shape=3)
        a = pm.Normal("a", 0, 1, shape=2)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Deterministic("spread", sigma * scale)
        pm.Potential(
            "fit",
            pm.math.where(
                keep, pm.logp(pm.Normal.dist(X @ beta + a[idx], sigma * scale), y), 0
            ).sum(),
        )
    return model, data


def test_cached_callbacks_draw_what_nutpies_own_compile_draws():
    import nutpie

    rng = np.random.default_rng(12)
    model, _ = _layout_model(rng, 40)
    _, other = _layout_model(rng, 65)  # new data of another size, swapped in
    ours = engine.compile_nutpie(model)
    theirs = nutpie.compile_pymc_model(model, freeze_model=False)
    settings = {
        "chains": 2,
        "draws": 200,
        "tune": 200,
        "seed": 5,
        "cores": 1,
        "progress_bar": False,
    }
    for data in (None, other):
        a, b = (
            nutpie.sample(c if data is None else c.with_data(**data), **settings)
            for c in (ours, theirs)
        )
        for group in ("posterior", "sample_stats"):
            for name, values in a[group].data_vars.items():
                if values.dtype != object:
                    np.testing.assert_array_equal(values, b[group][name], err_msg=name)
