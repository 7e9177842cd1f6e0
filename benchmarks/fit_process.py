"""One workflow-like process fitting a count model to ``data/example``, by four routes.

What a job pays to fit a model in a fresh process: imports, compilation and sampling (4 chains x
1000 draws after 1000 tuning steps, 2 cores). The routes:

``cached``
    The engine's route, :func:`crampstats.engine.compile_nutpie`: nutpie's two Numba C callbacks
    generated as source and cached on disk beside the log density.
``nutpie``
    ``nutpie.compile_pymc_model`` (the engine's route before): the log density comes from the
    PyTensor/Numba cache, the two callbacks are compiled again in every process.
``pymc``
    The plain PyMC default, ``pm.sample()`` (as installed it selects nutpie and compiles as
    ``nutpie`` does).
``jax``
    nutpie's JAX backend with JAX's persistent compilation cache. JAX is not a dependency of
    crampstats; install it aside, e.g. ``pip install --target /tmp/jaxpkgs jax==0.12.0.1
    jaxlib==0.12.0.1 ml_dtypes opt_einsum`` and run with ``PYTHONPATH=/tmp/jaxpkgs``.

Usage (``MODEL``: ``nb_totals`` or another count model of the catalogue; default ``nb_totals``):

    .venv/bin/python benchmarks/fit_process.py cached|nutpie|pymc|jax [MODEL]

Each run prints one line: seconds per phase and the posterior mean of the first arm's log rate
ratio (the routes must agree to Monte Carlo error; ``cached`` and ``nutpie`` bit for bit).
"""

from __future__ import annotations

import os
import sys
import time

START = time.perf_counter()
ROUTES = ("cached", "nutpie", "pymc", "jax")
ROUTE = sys.argv[1] if len(sys.argv) > 1 else "cached"
MODEL = sys.argv[2] if len(sys.argv) > 2 else "nb_totals"
if ROUTE not in ROUTES:
    raise SystemExit(f"usage: fit_process.py {'|'.join(ROUTES)} [MODEL]")
if ROUTE == "jax":
    import jax

    # every compiled program to the persistent cache, however small or quick to compile
    jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_CACHE", "/tmp/jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_enable_x64", True)

from crampstats.engine import use_compile_cache  # noqa: E402

use_compile_cache()  # before anything imports PyTensor: the machine's compile cache

import nutpie  # noqa: E402
import pymc as pm  # noqa: E402

from crampstats.catalogue import count_entry  # noqa: E402
from crampstats.derive import derive_all  # noqa: E402
from crampstats.engine import compile_nutpie  # noqa: E402
from crampstats.validate import validate  # noqa: E402

DRAWS = {"chains": 4, "draws": 1000, "tune": 1000}


def main() -> None:
    """Fit once and print the phases' wall times."""
    imports = time.perf_counter() - START
    result = validate("data/example", {"design": "parallel", "control_arm": "placebo"})
    entry = count_entry(MODEL)
    model = entry.model()
    prepared = model.prepare(derive_all(result.tables, dict(result.config))[entry.data])
    built = model._build(prepared)
    tic = time.perf_counter()
    if ROUTE == "pymc":
        compile_s = 0.0  # inside pm.sample
        with built:
            idata = pm.sample(**DRAWS, random_seed=1, cores=2, progressbar=False)
    else:
        if ROUTE == "cached":
            compiled = compile_nutpie(built)
        elif ROUTE == "nutpie":
            compiled = nutpie.compile_pymc_model(built, freeze_model=False)
        else:
            compiled = nutpie.compile_pymc_model(built, backend="jax", gradient_backend="jax")
        compile_s = time.perf_counter() - tic
        tic = time.perf_counter()
        idata = nutpie.sample(compiled, **DRAWS, seed=1, cores=2, progress_bar=False)
    sample_s = time.perf_counter() - tic
    log_rr = idata.posterior["log_rr"]
    first = float(log_rr.isel({log_rr.dims[-1]: 0}).mean())
    print(
        f"{ROUTE} {MODEL}: imports {imports:.1f} s, compile {compile_s:.1f} s, sample "
        f"{sample_s:.1f} s, total {time.perf_counter() - START:.1f} s; mean log RR {first:.4f}"
    )


if __name__ == "__main__":
    main()
