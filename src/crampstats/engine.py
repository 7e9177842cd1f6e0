"""Model objects that compile once and re-sample with new data, plus fit diagnostics.

The pattern follows pymc-extras' ``ModelBuilder``: a model is a small object with a
``default_model_config`` (priors, covariates, control arm: the *structure*), a
``default_sampler_config`` (chains, draws, ...), a :meth:`BayesModel.build` that creates a
``pm.Model`` whose data are all ``pm.Data`` containers, and a data setter
(:meth:`BayesModel.data_kwargs`) that swaps data without rebuilding.

Why this shape (docs/design.md, "What we measured"): compiling a model costs 5-15 s, sampling the
integrated-out formulations costs about a second. :meth:`BayesModel.fit` therefore compiles
with :func:`compile_nutpie` once per model *structure* and per process, and re-samples
with ``compiled.with_data(...)``. No free parameter has a subject dimension and no data
container has a static shape, so new data may have a different number of subjects, weeks or
rows; only the arms and covariate columns (the structure) must stay the same.

PyTensor compile directory
--------------------------
PyTensor keeps compiled code (C modules, and the Numba functions of the model's log density) in
``base_compiledir``. Every ``crampstats`` command shares one persistent directory per machine and
per set of package versions, :func:`compile_cache_dir` (docs/design.md, "Compile once per
machine"): a model structure compiled by one job is loaded from disk by every later job and run,
and a new version of PyTensor, Numba, PyMC, nutpie or Python starts a fresh directory, so compiled
code of another version is never read. nutpie's C callbacks are cached there too
(:func:`compile_nutpie`). Concurrent jobs are safe: PyTensor serialises C
compilation with an OS file lock (released if a process dies) and Numba writes each cache entry
to a temporary file and renames it. A process chooses the directory *before* PyTensor is
imported (:func:`use_compile_cache`, :func:`configure_compiledir`, or
``env=pytensor_compiledir_env(path)`` for a subprocess); this module imports PyMC, PyTensor and
nutpie lazily so that importing it does not fix the directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from crampstats.errors import CrampstatsError

if TYPE_CHECKING:
    import pymc as pm

__all__ = [
    "DEFAULT_THRESHOLDS",
    "BayesModel",
    "CountModel",
    "PreparedData",
    "StaleFitError",
    "clear_compile_cache",
    "compile_cache_dir",
    "compile_cache_info",
    "compile_nutpie",
    "configure_compiledir",
    "diagnose",
    "load_fit",
    "package_versions",
    "pytensor_compiledir_env",
    "save_fit",
    "thin_draws",
    "thinned_fit",
    "use_compile_cache",
]

#: Packages whose versions enter a model's id (a new version may change the posterior).
VERSIONED_PACKAGES = ("crampstats", "pymc", "pytensor", "nutpie", "numpy")

#: Default convergence thresholds (docs/design.md: every fit records them; failing ones are marked).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "rhat_max": 1.01,
    "ess_bulk_min": 400.0,
    "ess_tail_min": 400.0,
    "divergences_max": 0,
}

ATTR_PREFIX = "crampstats_"


class StaleFitError(CrampstatsError):
    """A stored fit was made by a different model structure or package versions."""


# --------------------------------------------------------------------------------------------
# PyTensor compile directory
# --------------------------------------------------------------------------------------------
def pytensor_compiledir_env(
    path: str | os.PathLike[str], base_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return an environment in which PyTensor compiles into its own directory ``path``.

    Parameters
    ----------
    path
        Directory for this process's compiled code (created by PyTensor on first use).
    base_env
        Environment to start from; defaults to ``os.environ``.

    Returns
    -------
    dict
        A copy of the environment whose ``PYTENSOR_FLAGS`` carries ``base_compiledir=path``
        (replacing any earlier ``base_compiledir``, keeping other flags).

    Notes
    -----
    PyTensor reads ``PYTENSOR_FLAGS`` once, at import. Pass the result as ``env=`` to a
    subprocess, or use :func:`configure_compiledir` before anything imports PyTensor.

    Examples
    --------
    >>> base = {"PYTENSOR_FLAGS": "floatX=float64"}
    >>> env = pytensor_compiledir_env("/tmp/ptc-job-7", base_env=base)
    >>> env["PYTENSOR_FLAGS"]
    'floatX=float64,base_compiledir=/tmp/ptc-job-7'
    """
    env = dict(os.environ if base_env is None else base_env)
    flags = [
        f
        for f in env.get("PYTENSOR_FLAGS", "").split(",")
        if f.strip() and not f.strip().startswith("base_compiledir=")
    ]
    flags.append(f"base_compiledir={os.fspath(path)}")
    env["PYTENSOR_FLAGS"] = ",".join(flags)
    return env


def configure_compiledir(path: str | os.PathLike[str]) -> None:
    """Point this process's PyTensor compile directory at ``path``.

    Parameters
    ----------
    path
        Directory for compiled code.

    Raises
    ------
    RuntimeError
        If PyTensor is already imported with a different directory (too late to change it).
    """
    if "pytensor" in sys.modules:
        import pytensor

        if Path(pytensor.config.base_compiledir) != Path(path):
            raise RuntimeError(
                "PyTensor is already imported; set PYTENSOR_FLAGS=base_compiledir=... "
                "before importing pymc, pytensor or crampstats.models"
            )
        return
    os.environ["PYTENSOR_FLAGS"] = pytensor_compiledir_env(path)["PYTENSOR_FLAGS"]


#: Packages whose versions key the compile cache (they generate or compile the model's code).
COMPILER_PACKAGES = ("pytensor", "numba", "llvmlite", "pymc", "nutpie", "numpy")


def compile_cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the persistent compile directory of this machine for the installed versions.

    Parameters
    ----------
    root
        Where caches live; default ``$CRAMPSTATS_CACHE_DIR``, else ``$XDG_CACHE_HOME/crampstats``,
        else ``~/.cache/crampstats``.

    Returns
    -------
    pathlib.Path
        ``<root>/pytensor-<hash>``, the hash taken over the Python version and the versions of
        :data:`COMPILER_PACKAGES`, so that code compiled by other versions is never served.
    """
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = os.environ.get("CRAMPSTATS_CACHE_DIR") or Path(xdg) / "crampstats"
    versions = {"python": sys.version.split()[0]}
    for name in COMPILER_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return Path(root) / f"pytensor-{_hash(versions)[:16]}"


#: PyTensor flags every command sets: IEEE arithmetic in the compiled log density. With Numba's
#: fastmath, LLVM may reassociate sums differently in a function compiled fresh (and inlined) than
#: in the same function linked from the cache, so a cold and a warm run of the same seed drew
#: different posteriors; without it they are identical (tests/test_compile_cache.py).
PYTENSOR_DEFAULT_FLAGS = ("numba__fastmath=False",)


def use_compile_cache() -> Path:
    """Compile into :func:`compile_cache_dir`, with IEEE arithmetic, unless already chosen.

    Called by the command line before anything imports PyTensor. Flags already in
    ``PYTENSOR_FLAGS`` win (an explicit ``base_compiledir`` of a user or a test is left alone),
    and a process that has already imported PyTensor keeps its settings (a library caller or a
    test session calling the command line in-process).

    Returns
    -------
    pathlib.Path
        The directory this process compiles into.
    """
    if "pytensor" in sys.modules:
        import pytensor

        return Path(pytensor.config.base_compiledir)
    flags = [f.strip() for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f.strip()]
    named = {f.split("=", 1)[0] for f in flags}
    flags += [f for f in PYTENSOR_DEFAULT_FLAGS if f.split("=", 1)[0] not in named]
    if "base_compiledir" not in named:
        flags.append(f"base_compiledir={compile_cache_dir()}")
    os.environ["PYTENSOR_FLAGS"] = ",".join(flags)
    return Path(next(f for f in flags if f.startswith("base_compiledir=")).split("=", 1)[1])


# --------------------------------------------------------------------------------------------
# Ids and versions
# --------------------------------------------------------------------------------------------
@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    out = []
    for name in VERSIONED_PACKAGES:
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            out.append((name, "unknown"))
    return tuple(out)


def package_versions() -> dict[str, str]:
    """Versions of the packages that enter a model id (looked up once per process)."""
    return dict(_installed_versions())


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# nutpie's C callbacks, cached on disk
# --------------------------------------------------------------------------------------------
#: Byte size of one word of nutpie's ``user_data`` record (all of its fields are 64-bit).
_WORD = 8


def _shared_array_source(index: int, key: str, value: np.ndarray, word: Any) -> str:
    """One line of a callback that views shared variable ``key`` in nutpie's ``user_data``."""
    if value.ndim:
        start = word("shape", key)
        dims = "".join(f"np.intp(u[{start + d}]), " for d in range(value.ndim))
        shape = f"({dims})"
    else:
        shape = "()"
    pointer = f"address_as_void_pointer(u[{word('data', key)}])"
    return f"        a{index} = numba.carray({pointer}, {shape}, np.{value.dtype.name})\n"


def _callback_head(n_dim: int, n_words: int, arrays: list[str]) -> str:
    """Return the start of a callback's ``try`` block: the point and shared arrays as views."""
    return (
        "    try:\n"
        f"        x = numba.carray(x_, ({n_dim},))\n"
        f"        u = numba.carray(user_data_, ({n_words},), np.uint64)\n" + "".join(arrays)
    )


def _logp_source(n_dim: int, n_words: int, arrays: list[str]) -> str:
    """Source of nutpie's log-density callback with every size written in as a literal.

    Body and return codes are those of nutpie 0.16's ``_make_c_logp_func``: -1 a size mismatch,
    1 an exception, 3 a non-finite gradient, 4 a non-finite log density. An element loop
    replaces nutpie's ``out[...] = grad``, whose Numba implementation alone took about 2.5 s to
    compile in every process.
    """
    call = ", ".join(["x", *(f"a{i}" for i in range(len(arrays)))])
    return (
        "def logp_callback(dim, x_, out_, logp_, user_data_):\n"
        f"    if dim != {n_dim}:\n        return -1\n"
        + _callback_head(n_dim, n_words, arrays)
        + f"        out = numba.carray(out_, ({n_dim},))\n"
        f"        logp, grad = inner({call})\n"
        "        logp_[0] = logp\n"
        f"        for i in range({n_dim}):\n            out[i] = grad[i]\n"
        f"        for i in range({n_dim}):\n"
        "            if not np.isfinite(out[i]):\n                return 3\n"
        "        if not np.isfinite(logp):\n            return 4\n"
        "    except Exception:\n        return 1\n"
        "    return 0\n"
    )


def _expand_source(n_dim: int, n_expanded: int, n_words: int, arrays: list[str]) -> str:
    """Source of nutpie's callback that expands a point into the stored values.

    Body and return codes are those of nutpie 0.16's ``_make_c_expand_func``: -1 a size
    mismatch, -2 an exception.
    """
    call = ", ".join(["x", *(f"a{i}" for i in range(len(arrays)))])
    return (
        "def expand_callback(dim, expanded, x_, out_, user_data_):\n"
        f"    if dim != {n_dim}:\n        return -1\n"
        f"    if expanded != {n_expanded}:\n        return -1\n"
        + _callback_head(n_dim, n_words, arrays)
        + f"        out = numba.carray(out_, ({n_expanded},))\n"
        f"        (values,) = inner({call})\n"
        f"        for i in range({n_expanded}):\n            out[i] = values[i]\n"
        "    except Exception:\n        return -2\n"
        "    return 0\n"
    )


def compile_nutpie(model: pm.Model) -> Any:
    """Compile ``model`` for nutpie as ``nutpie.compile_pymc_model(model, freeze_model=False)``.

    nutpie 0.16 wraps the model's log density in two Numba C callbacks that Numba cannot cache
    (they close over run-time objects), so every process paid their compilation, about 5 s per
    model structure, even when PyTensor loaded the log density itself from disk. Here the
    callbacks are generated as source with every size written in, read nutpie's ``user_data``
    record as 64-bit words, and go into PyTensor's Numba cache under a key made of their
    source and the cache key of the PyTensor function they call: a later process loads them
    (about 0.7 s per structure), and a changed model, data layout or version compiles anew.
    The compiled model is nutpie's own ``CompiledPyMCModel`` (``with_data`` and sampling
    unchanged) and draws the same numbers as nutpie's compile, bit for bit
    (tests/test_compile_cache.py).

    Parameters
    ----------
    model
        A PyMC model whose data are ``pm.Data`` containers.

    Returns
    -------
    nutpie.compiled_pymc.CompiledPyMCModel
    """
    import numba
    import pytensor
    from nutpie import compile_pymc as nc
    from pymc.initial_point import make_initial_point_fn
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    initial_point = nc._wrap_with_lock(
        make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs), return_transformed=True)
    )
    n_dim, n_expanded, logp_fn, expand_fn, initial_point_fn, shape_info, reparameterized = (
        nc._make_functions(
            model,
            mode="NUMBA",
            compute_grad=True,
            join_expanded=True,
            pymc_initial_point_fn=initial_point,
        )
    )
    shared_data: dict[str, np.ndarray] = {}
    shared_keys: dict[Any, str] = {}
    for var in [*logp_fn.get_shared(), *expand_fn.get_shared()]:
        if var not in shared_keys:
            # Positional keys (nutpie draws random ones) keep the source, so the cache key, fixed.
            key = shared_keys[var] = f"s{len(shared_keys)}"
            shared_data[key] = np.array(var.get_value(), order="C", copy=True)
            shared_data[key].flags.writeable = False
    user_data = nc.make_user_data(shared_keys, shared_data)
    record = user_data.dtype["shared"]
    record_offset = user_data.dtype.fields["shared"][1]

    def word(group: str, key: str) -> int:
        group_dtype, group_offset = record.fields[group][:2]
        return (record_offset + group_offset + group_dtype.fields[key][1]) // _WORD

    n_words = user_data.dtype.itemsize // _WORD

    def callback(
        function: Any, source_of: Callable[[list[str]], str], name: str, signature: Any
    ) -> Any:
        inner = function.vm.jit_fn
        arrays = [
            _shared_array_source(i, shared_keys[var], shared_data[shared_keys[var]], word)
            for i, var in enumerate(function.get_shared())
        ]
        source = source_of(arrays)
        inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
        cacheable = inner_key is not None and pytensor.config.numba__cache
        python = compile_numba_function_src(
            source,
            name,
            {
                "__name__": __name__,  # Numba imports it to rebuild a cached function's globals
                "numba": numba,
                "np": np,
                "inner": inner,
                "address_as_void_pointer": nc.address_as_void_pointer,
            },
            cache_key=_hash([source, inner_key]) if cacheable else None,
        )
        return numba.cfunc(signature, cache=cacheable)(python)

    types = numba.types
    pointer = types.CPointer(types.double)
    logp_callback = callback(
        logp_fn,
        lambda arrays: _logp_source(n_dim, n_words, arrays),
        "logp_callback",
        types.int64(types.uint64, pointer, pointer, pointer, types.voidptr),
    )
    expand_callback = callback(
        expand_fn,
        lambda arrays: _expand_source(n_dim, n_expanded, n_words, arrays),
        "expand_callback",
        types.int64(types.uint64, types.uint64, pointer, pointer, types.voidptr),
    )
    dims, coords = nc._prepare_dims_and_coords(model, shape_info, reparameterized)
    return nc.CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp_callback,
        compiled_expand_func=expand_callback,
        initial_point_func=initial_point_fn,
        shared_data=shared_data,
        shared_var_keys=shared_keys,
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=logp_fn,
        expand_func=expand_fn,
        reparameterized_names=reparameterized,
    )


# --------------------------------------------------------------------------------------------
# Compile cache (per process)
# --------------------------------------------------------------------------------------------
_COMPILE_CACHE: dict[str, Any] = {}
_COMPILE_STATS: dict[str, int] = {"compiles": 0, "hits": 0}


def clear_compile_cache() -> None:
    """Forget all compiled models of this process (the next fit compiles again)."""
    _COMPILE_CACHE.clear()
    _COMPILE_STATS.update(compiles=0, hits=0)


def compile_cache_info() -> dict[str, int]:
    """Return ``{"compiles", "hits", "size"}`` of this process's compile cache."""
    return {**_COMPILE_STATS, "size": len(_COMPILE_CACHE)}


# --------------------------------------------------------------------------------------------
# Model base class
# --------------------------------------------------------------------------------------------
@dataclass
class PreparedData:
    """Analysis data turned into arrays for one model.

    Attributes
    ----------
    data : dict
        Arrays for the model's ``pm.Data`` containers, by container name. Their shapes may
        change between fits; their number of dimensions may not.
    coords : dict
        Structural coordinates (arms, covariate columns). Part of the compile-cache key.
    constants : dict
        Data-dependent constants (centring values) recorded in the posterior attrs.
    subject_data : xarray.Dataset
        Per-subject design stored as the fit's ``constant_data`` group, so that absolute
        effects can be computed from the saved fit alone.
    extra : dict
        Arrays used after sampling (pointwise log-likelihood, twins) but not by the compiled
        model, e.g. the weekly rows of a model that samples on sufficient statistics.
    """

    data: dict[str, np.ndarray]
    coords: dict[str, list[str]]
    constants: dict[str, float] = field(default_factory=dict)
    subject_data: xr.Dataset = field(default_factory=xr.Dataset)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_subjects(self) -> int:
        """Number of subjects in the data."""
        return int(self.subject_data.sizes.get("subject", 0))


class BayesModel(ABC):
    """A Bayesian model that is compiled once per structure and re-sampled with new data.

    Parameters
    ----------
    model_config
        Overrides of :attr:`default_model_config` (priors, covariates, control arm, arms).
    sampler_config
        Overrides of :attr:`default_sampler_config`.

    Attributes
    ----------
    name : str
        Catalogue id of the model (docs/design.md).
    default_model_config : dict
        Structure and priors; every key enters :attr:`id`.
    default_sampler_config : dict
        ``chains, draws, tune, cores, target_accept``; ``cores=None`` means
        ``min(chains, CPUs available to this process)``, always passed to nutpie explicitly.
    """

    name: ClassVar[str] = "base"
    default_model_config: ClassVar[dict[str, Any]] = {}
    default_sampler_config: ClassVar[dict[str, Any]] = {
        "chains": 4,
        "draws": 1000,
        "tune": 1000,
        "cores": None,
        "target_accept": 0.8,
    }

    def __init__(
        self,
        model_config: Mapping[str, Any] | None = None,
        sampler_config: Mapping[str, Any] | None = None,
    ) -> None:
        unknown = set(model_config or {}) - set(self.default_model_config)
        if unknown:
            raise ValueError(f"unknown {self.name} model_config key(s): {sorted(unknown)}")
        unknown = set(sampler_config or {}) - set(self.default_sampler_config)
        if unknown:
            raise ValueError(f"unknown sampler_config key(s): {sorted(unknown)}")
        self.model_config: dict[str, Any] = {**self.default_model_config, **(model_config or {})}
        self.sampler_config: dict[str, Any] = {
            **self.default_sampler_config,
            **(sampler_config or {}),
        }

    # ---- identity ---------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """Hash of model name, model config and package versions (not of the data)."""
        return _hash({"name": self.name, "config": self.model_config, **package_versions()})

    def structure_key(self, prepared: PreparedData) -> str:
        """Compile-cache key: :attr:`id` plus the structural coordinates of ``prepared``."""
        return _hash({"id": self.id, "coords": prepared.coords})

    # ---- to be provided by each model -------------------------------------------------------
    @abstractmethod
    def prepare(self, data: pd.DataFrame) -> PreparedData:
        """Validate ``data`` and turn it into arrays (drops zero-exposure rows)."""

    @abstractmethod
    def _build(self, prepared: PreparedData) -> pm.Model:
        """Create the ``pm.Model``; every array in ``prepared.data`` becomes a ``pm.Data``."""

    @abstractmethod
    def pointwise_log_likelihood(self, idata: xr.DataTree, prepared: PreparedData) -> xr.DataArray:
        """Log-likelihood per subject and draw, dims ``(chain, draw, subject)``."""

    # ---- building and data swapping ---------------------------------------------------------
    def build(self, data: pd.DataFrame | PreparedData) -> pm.Model:
        """Return a fresh ``pm.Model`` for ``data`` (data as ``pm.Data`` containers)."""
        prepared = data if isinstance(data, PreparedData) else self.prepare(data)
        return self._build(prepared)

    def data_kwargs(self, data: pd.DataFrame | PreparedData) -> dict[str, np.ndarray]:
        """Keyword arguments for ``compiled.with_data(**kwargs)`` that swap in ``data``."""
        prepared = data if isinstance(data, PreparedData) else self.prepare(data)
        return dict(prepared.data)

    def compile(self, data: pd.DataFrame | PreparedData) -> Any:
        """Return the nutpie-compiled model for ``data``'s structure, compiling at most once.

        Parameters
        ----------
        data
            Analysis data (or its prepared form); only its structure (arms, covariate
            columns) matters for the cache, its values are swapped in by :meth:`fit`.

        Returns
        -------
        nutpie.compiled_pymc.CompiledPyMCModel
            Cached per process under :meth:`structure_key`.
        """
        prepared = data if isinstance(data, PreparedData) else self.prepare(data)
        key = self.structure_key(prepared)
        if key in _COMPILE_CACHE:
            _COMPILE_STATS["hits"] += 1
            return _COMPILE_CACHE[key]
        compiled = compile_nutpie(self._build(prepared))
        _COMPILE_STATS["compiles"] += 1
        _COMPILE_CACHE[key] = compiled
        return compiled

    # ---- fitting ----------------------------------------------------------------------------
    def resolved_sampler_config(self, **overrides: Any) -> dict[str, Any]:
        """Sampler settings with ``overrides`` (``None`` values ignored) and ``cores`` resolved."""
        cfg = {**self.sampler_config, **{k: v for k, v in overrides.items() if v is not None}}
        if cfg["cores"] is None:
            cfg["cores"] = min(int(cfg["chains"]), _available_cpus())
        for key in ("chains", "draws", "tune", "cores"):
            cfg[key] = int(cfg[key])
        return cfg

    def fit(
        self,
        data: pd.DataFrame | PreparedData,
        seed: int,
        chains: int | None = None,
        cores: int | None = None,
        draws: int | None = None,
        tune: int | None = None,
        *,
        log_likelihood: bool = False,
        progress: bool = False,
    ) -> xr.DataTree:
        """Sample the posterior for ``data`` with the (cached) compiled model.

        Parameters
        ----------
        data
            Analysis data: the ``periods`` or ``weekly`` frame the model expects.
        seed
            Integer seed (derive it from one ``numpy.random.SeedSequence``).
        chains, cores, draws, tune
            Override :attr:`sampler_config`. ``cores`` is always passed to nutpie.
        log_likelihood
            Add a ``log_likelihood`` group (one value per subject and draw) for LOO.
        progress
            Show nutpie's progress bar (sampling progress per chain).

        Returns
        -------
        xarray.DataTree
            ``posterior``, ``sample_stats``, ``constant_data`` (per-subject design) and
            optionally ``log_likelihood``; ``posterior.attrs`` hold the model id, structure
            key, model and sampler config, seed, package versions and centring constants.
        """
        import nutpie

        if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
            raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
        prepared = data if isinstance(data, PreparedData) else self.prepare(data)
        cfg = self.resolved_sampler_config(chains=chains, cores=cores, draws=draws, tune=tune)
        compiled = self.compile(prepared)
        # PyTensor drops data containers the density does not use (e.g. week times when the
        # trend is off); nutpie then knows no such variable, and they carry nothing to sample.
        used = {var.name for var in compiled.shared_var_keys}
        kwargs = {k: v for k, v in self.data_kwargs(prepared).items() if k in used}
        compiled = compiled.with_data(**kwargs)
        idata = nutpie.sample(
            compiled,
            draws=cfg["draws"],
            tune=cfg["tune"],
            chains=cfg["chains"],
            cores=cfg["cores"],
            seed=int(seed),
            target_accept=float(cfg["target_accept"]),
            save_warmup=False,
            progress_bar=progress,
        )
        idata = _drop_object_stats(idata)
        idata["constant_data"] = xr.DataTree(prepared.subject_data)
        idata["posterior"].attrs.update(self._attrs(prepared, cfg, int(seed)))
        if log_likelihood:
            idata = self.add_log_likelihood(idata, prepared)
        return idata

    def add_log_likelihood(
        self, idata: xr.DataTree, data: pd.DataFrame | PreparedData
    ) -> xr.DataTree:
        """Return ``idata`` with a ``log_likelihood`` group (variable ``y``, per subject)."""
        prepared = data if isinstance(data, PreparedData) else self.prepare(data)
        loglik = self.pointwise_log_likelihood(idata, prepared)
        idata["log_likelihood"] = xr.DataTree(xr.Dataset({"y": loglik}))
        return idata

    def _attrs(self, prepared: PreparedData, cfg: dict[str, Any], seed: int) -> dict[str, Any]:
        return {
            f"{ATTR_PREFIX}model": self.name,
            f"{ATTR_PREFIX}model_id": self.id,
            f"{ATTR_PREFIX}structure": self.structure_key(prepared),
            f"{ATTR_PREFIX}model_config": json.dumps(self.model_config, sort_keys=True),
            f"{ATTR_PREFIX}coords": json.dumps(prepared.coords),
            f"{ATTR_PREFIX}sampler_config": json.dumps(cfg, sort_keys=True),
            f"{ATTR_PREFIX}seed": seed,
            f"{ATTR_PREFIX}versions": json.dumps(package_versions(), sort_keys=True),
            f"{ATTR_PREFIX}constants": json.dumps(prepared.constants, sort_keys=True),
            f"{ATTR_PREFIX}n_subjects": prepared.n_subjects,
        }


class CountModel(BayesModel):
    """A :class:`BayesModel` of cramp counts: the frequency models of the catalogue.

    Adds what the decision quantities and the rootogram need of a count model: each subject's
    expected rate under control and the posterior predictive pmf of every modelled count.
    """

    @abstractmethod
    def subject_log_rate(self, idata: xr.DataTree) -> xr.DataArray:
        """Log of the expected cramps per day of each subject had they received the control.

        Computed from the fit's ``constant_data`` group; dims ``(chain, draw, subject)``.
        """

    @abstractmethod
    def predictive_pmf(
        self, idata: xr.DataTree, prepared: PreparedData, max_count: int, n_draws: int = 200
    ) -> tuple[np.ndarray, np.ndarray]:
        """Observed count of every modelled unit and its posterior predictive pmf.

        Feeds the rootogram (:func:`crampstats.compare.ppc.rootogram`). A unit is what the model's
        likelihood counts: a subject's total, a subject-week, a subject-period.

        Parameters
        ----------
        idata
            The fit.
        prepared
            The data it was fitted to.
        max_count
            Largest count tabulated; the last column holds ``P(y >= max_count)``.
        n_draws
            Posterior draws averaged over (evenly thinned, :func:`thin_draws`).

        Returns
        -------
        observed : numpy.ndarray
            ``(n_units,)`` integer counts.
        pmf : numpy.ndarray
            ``(n_units, max_count + 1)``; each row sums to 1.
        """


def thin_draws(posterior: xr.Dataset, n_draws: int) -> xr.Dataset:
    """Keep about ``n_draws`` evenly spaced draws in total (chains kept, dims unchanged)."""
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    per_chain = max(1, min(n_draw, -(-n_draws // n_chain)))
    idx = np.unique(np.linspace(0, n_draw - 1, per_chain).round().astype(int))
    return posterior.isel(draw=idx)


def thinned_fit(idata: xr.DataTree, n_draws: int) -> xr.DataTree:
    """Return a fit with only ``posterior`` (thinned, :func:`thin_draws`) and ``constant_data``."""
    groups = {"posterior": thin_draws(idata["posterior"].to_dataset(), n_draws)}
    if "constant_data" in idata.children:
        groups["constant_data"] = idata["constant_data"].to_dataset()
    return xr.DataTree.from_dict(groups)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _drop_object_stats(idata: xr.DataTree) -> xr.DataTree:
    """Drop object-dtype sample stats (nutpie's divergence messages): netCDF cannot store them."""
    stats = idata["sample_stats"].to_dataset()
    objects = [name for name, var in stats.data_vars.items() if var.dtype == object]
    if objects:
        idata["sample_stats"] = xr.DataTree(stats.drop_vars(objects), name="sample_stats")
    return idata


# --------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------
def save_fit(idata: xr.DataTree, path: str | os.PathLike[str]) -> Path:
    """Write a fit atomically (temporary name, then renamed into place).

    Parameters
    ----------
    idata
        The fit.
    path
        ``*.zarr`` writes a Zarr store (directory, unconsolidated metadata, needs only the
        ``zarr`` package); any other suffix writes netCDF-4 (needs ``h5netcdf`` or ``netCDF4``).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    if path.suffix == ".zarr":
        idata.to_zarr(tmp, mode="w", consolidated=False)
        if path.is_dir():
            shutil.rmtree(path)
    else:
        try:
            idata.to_netcdf(tmp)
        except ValueError as err:
            if "backend libraries" not in str(err):
                raise
            raise CrampstatsError(
                f"cannot write {path}: no netCDF backend installed (h5netcdf or netCDF4); "
                "install one or save as .zarr"
            ) from err
    tmp.replace(path)
    return path


def load_fit(path: str | os.PathLike[str], model: BayesModel) -> xr.DataTree:
    """Read a fit and check it was made by ``model`` (same config and package versions).

    Parameters
    ----------
    path
        A netCDF file or Zarr store written by :func:`save_fit`.
    model
        The model object the caller intends to use the fit with.

    Returns
    -------
    xarray.DataTree
        The fit, loaded into memory.

    Raises
    ------
    StaleFitError
        If the stored model id differs from ``model.id``: the cached fit is stale.
    """
    path = Path(path)
    if path.is_dir():
        idata = xr.open_datatree(path, engine="zarr", consolidated=False).load()
    else:
        idata = xr.open_datatree(path).load()
    attrs = idata["posterior"].attrs
    stored = attrs.get(f"{ATTR_PREFIX}model_id")
    if stored != model.id:
        raise StaleFitError(
            f"{path}: fit was made by model id {stored!r} "
            f"({attrs.get(f'{ATTR_PREFIX}model')}, "
            f"versions {attrs.get(f'{ATTR_PREFIX}versions')}); "
            f"the current {model.name} model has id {model.id!r} "
            f"(versions {json.dumps(package_versions(), sort_keys=True)}); refit"
        )
    return idata


# --------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------
def diagnose(
    idata: xr.DataTree,
    thresholds: Mapping[str, float] | None = None,
    var_names: list[str] | None = None,
) -> dict[str, Any]:
    """Check convergence of a fit against thresholds.

    Parameters
    ----------
    idata
        A fit with ``posterior`` and ``sample_stats`` groups.
    thresholds
        Overrides of :data:`DEFAULT_THRESHOLDS`: ``rhat_max`` (1.01), ``ess_bulk_min`` (400),
        ``ess_tail_min`` (400), ``divergences_max`` (0).
    var_names
        Posterior variables to check; default all.

    Returns
    -------
    dict
        ``rhat_max, ess_bulk_min, ess_tail_min, divergences, status`` (``"ok"`` or
        ``"failed"``) and ``reasons`` (a list of what failed; a NaN diagnostic fails).
    """
    import arviz_stats as azs  # here: every command imports the engine, few diagnose

    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    unknown = set(limits) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown threshold(s) {sorted(unknown)}")
    posterior = idata["posterior"].to_dataset()
    if var_names is not None:
        posterior = posterior[var_names]

    def extreme(ds: xr.Dataset, how: str) -> float:
        values = np.concatenate([np.ravel(v.values) for v in ds.data_vars.values()])
        if values.size == 0 or np.isnan(values).any():
            return float("nan")
        return float(values.max() if how == "max" else values.min())

    rhat_max = extreme(azs.rhat(posterior), "max")
    ess_bulk = extreme(azs.ess(posterior, method="bulk"), "min")
    ess_tail = extreme(azs.ess(posterior, method="tail"), "min")
    divergences = int(idata["sample_stats"]["diverging"].sum())

    reasons = []
    if not rhat_max <= limits["rhat_max"]:
        reasons.append(f"R-hat {rhat_max:.4f} > {limits['rhat_max']}")
    if not ess_bulk >= limits["ess_bulk_min"]:
        reasons.append(f"bulk ESS {ess_bulk:.0f} < {limits['ess_bulk_min']:.0f}")
    if not ess_tail >= limits["ess_tail_min"]:
        reasons.append(f"tail ESS {ess_tail:.0f} < {limits['ess_tail_min']:.0f}")
    if divergences > limits["divergences_max"]:
        reasons.append(f"{divergences} divergent transition(s) > {limits['divergences_max']:g}")
    return {
        "rhat_max": rhat_max,
        "ess_bulk_min": ess_bulk,
        "ess_tail_min": ess_tail,
        "divergences": divergences,
        "status": "failed" if reasons else "ok",
        "reasons": reasons,
    }
