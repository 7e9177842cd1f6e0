"""One workflow-like process fitting ``nb_totals``, with nutpie's Numba or JAX backend.

The speed issue offered two ways to stop paying compilation in every job: the compile cache on
disk (PyTensor's and Numba's, used today; nutpie's two Numba callbacks per model cannot be cached)
or nutpie's JAX backend with JAX's persistent compilation cache. This script times what a job
pays with each: imports, ``nutpie.compile_pymc_model`` and sampling (4 chains x 1000 draws after
1000 tuning steps, 2 cores) of ``nb_totals`` on ``data/example``, in a fresh process.

JAX is not a dependency of crampstats; install it aside, e.g.
``pip install --target /tmp/jaxpkgs jax==0.12.0.1 jaxlib==0.12.0.1 ml_dtypes opt_einsum``, then:

    .venv/bin/python benchmarks/jax_backend.py numba
    PYTHONPATH=/tmp/jaxpkgs JAX_CACHE=/tmp/jax-cache .venv/bin/python benchmarks/jax_backend.py jax

Each prints one line: seconds per phase and the posterior mean log rate ratio (the two backends
must agree to Monte Carlo error).
"""

from __future__ import annotations

import os
import sys
import time

START = time.perf_counter()
BACKEND = sys.argv[1] if len(sys.argv) > 1 else "numba"
if BACKEND not in ("numba", "jax"):
    raise SystemExit("usage: jax_backend.py numba|jax")
if BACKEND == "jax":
    import jax

    # every compiled program to the persistent cache, however small or quick to compile
    jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_CACHE", "/tmp/jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_enable_x64", True)

from crampstats.engine import use_compile_cache  # noqa: E402

use_compile_cache()  # before anything imports PyTensor: the machine's compile cache

import nutpie  # noqa: E402

from crampstats.derive import derive_all  # noqa: E402
from crampstats.models import NBTotals  # noqa: E402
from crampstats.validate import validate  # noqa: E402


def main() -> None:
    """Fit once and print the phases' wall times."""
    imports = time.perf_counter() - START
    result = validate("data/example", {"design": "parallel", "control_arm": "placebo"})
    model = NBTotals()
    prepared = model.prepare(derive_all(result.tables, dict(result.config))["periods"])
    tic = time.perf_counter()
    options = {"backend": "jax", "gradient_backend": "jax"} if BACKEND == "jax" else {}
    compiled = nutpie.compile_pymc_model(model._build(prepared), **options)
    compile_s = time.perf_counter() - tic
    tic = time.perf_counter()
    idata = nutpie.sample(
        compiled, chains=4, draws=1000, tune=1000, seed=1, cores=2, progress_bar=False
    )
    sample_s = time.perf_counter() - tic
    print(
        f"{BACKEND}: imports {imports:.1f} s, compile {compile_s:.1f} s, sample {sample_s:.1f} s,"
        f" total {time.perf_counter() - START:.1f} s; mean log RR "
        f"{float(idata.posterior['log_rr'].mean()):.4f}"
    )


if __name__ == "__main__":
    main()
