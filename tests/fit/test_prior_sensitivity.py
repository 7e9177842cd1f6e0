"""What the fit step stores for prior sensitivity (``crampstats.fit.prior_sensitivity``).

The log prior is checked against SciPy's densities on hand-made draws (no sampling): the
``nb_totals`` priors (normal and log-normal) and ``multi_trial``'s log rate ratio prior, which the
model writes as a potential. The named priors' settings are checked against their definitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from crampstats.catalogue import count_entry
from crampstats.config import ConfigError, load_trial_config
from crampstats.fit import make_model
from crampstats.fit.prior_sensitivity import (
    DEFAULT_SETTINGS,
    SCEPTICAL_LOG_RR_SD,
    add_log_prior,
    alternative_config,
    prior_refits,
    sensitivity_settings,
    top_level,
)
from crampstats.models.multi_trial import MultiTrial
from crampstats.models.nb_totals import NBTotals
from crampstats.models.synthetic import simulate_parallel_trial


def test_schema_defaults_are_the_module_defaults():
    assert load_trial_config(None)["analysis"]["prior_sensitivity"] == DEFAULT_SETTINGS
    assert sensitivity_settings({}) == DEFAULT_SETTINGS


def test_sceptical_prior_gives_the_planned_effect_ten_percent():
    # Normal(0, sd) on log RR with P(RR < 0.75) = 0.1; the SD is rounded to 4 decimals, which
    # moves the probability by less than 5e-4 (d/d sd of the normal CDF here is ~0.8)
    assert stats.norm.cdf(np.log(0.75), 0, SCEPTICAL_LOG_RR_SD) == pytest.approx(0.1, abs=5e-4)
    assert DEFAULT_SETTINGS["priors"]["sceptical"]["prior_log_rr_sd"] == SCEPTICAL_LOG_RR_SD


def test_alternative_config_adds_overrides_without_touching_the_input():
    config = {"analysis": {"model_config": {"nb_totals": {"prior_k_sd": 2.0}}}, "seed": 3}
    out = alternative_config(config, "nb_totals", {"prior_log_rr_sd": 0.5})
    merged = {"prior_k_sd": 2.0, "prior_log_rr_sd": 0.5}
    assert out["analysis"]["model_config"]["nb_totals"] == merged
    assert config["analysis"]["model_config"]["nb_totals"] == {"prior_k_sd": 2.0}
    assert out["seed"] == 3


def test_unknown_prior_key_is_a_config_error():
    config = load_trial_config(None)
    with pytest.raises(ConfigError, match=r"prior_sensitivity\.priors\.odd: .*prior_nonsense"):
        prior_refits(
            count_entry("nb_totals"), pd.DataFrame(), config, make_model,
            priors={"odd": {"prior_nonsense": 1.0}},
        )  # fmt: skip


def _periods(rng: np.random.Generator, trial_id: str = "sim") -> pd.DataFrame:
    periods, _, _ = simulate_parallel_trial(
        rng, {"placebo": 1.0, "quinine": 0.8}, 6, trial_id=trial_id
    )
    return periods


def _draws(rng, shape, positive=False):
    values = rng.normal(0.0, 0.5, size=shape)
    return np.exp(values) if positive else values


def test_log_prior_of_nb_totals_matches_scipy(rng):
    model = NBTotals()
    prepared = model.prepare(_periods(rng))
    size = (2, 5)
    post = xr.Dataset(
        {
            "alpha": (("chain", "draw"), _draws(rng, size)),
            "log_rr": (("chain", "draw", "arm"), _draws(rng, (*size, 1))),
            "b": (("chain", "draw"), _draws(rng, size)),
            "k": (("chain", "draw"), _draws(rng, size, positive=True)),
        },
        coords={"arm": ["quinine"]},
    )
    idata = add_log_prior(model, prepared, xr.DataTree.from_dict({"posterior": post}))
    lp = idata["log_prior"].to_dataset()
    cfg = model.model_config
    expected = {
        "alpha": stats.norm.logpdf(post["alpha"], cfg["prior_alpha_mu"], cfg["prior_alpha_sd"]),
        "log_rr": stats.norm.logpdf(post["log_rr"], 0.0, cfg["prior_log_rr_sd"]),
        "b": stats.norm.logpdf(post["b"], cfg["prior_b_mu"], cfg["prior_b_sd"]),
        # density of k itself (no Jacobian of the log transform): power-scaling scales p(k)
        "k": stats.lognorm.logpdf(post["k"], cfg["prior_k_sd"], scale=np.exp(cfg["prior_k_mu"])),
    }
    for name, value in expected.items():
        np.testing.assert_allclose(lp[name].values, value, rtol=1e-10, err_msg=name)
    assert list(lp["log_rr"]["arm"].values) == ["quinine"]
    assert idata["posterior"].to_dataset().identical(post)
    assert sorted(top_level(lp)) == ["alpha", "b", "k", "log_rr"]


@pytest.mark.slow
def test_log_prior_of_multi_trial_includes_its_log_rr_potential(rng):
    # multi_trial puts a flat prior on the trial mean of each arm's effects and writes the
    # Normal(0, prior_log_rr_sd) prior of the pooled log RR as a potential: it must be in the
    # log prior, or power-scaling would ignore the effect's prior.
    from pymc.model.transform.conditioning import remove_value_transforms

    frame = pd.concat([_periods(rng, "t1"), _periods(rng, "t2")], ignore_index=True)
    model = MultiTrial()
    prepared = model.prepare(frame)
    pm_model = remove_value_transforms(model.build(prepared))
    size = (2, 4)
    values = {}
    for rv in pm_model.free_RVs:
        shape = tuple(len(pm_model.coords[d]) for d in pm_model.named_vars_to_dims.get(rv.name, ()))
        values[rv.name] = _draws(rng, (*size, *shape), positive=rv.name in ("tau", "k"))
    (log_rr_graph,) = pm_model.replace_rvs_by_values([pm_model["log_rr"]])
    log_rr_fn = pm_model.compile_fn(
        inputs=pm_model.value_vars, outs=log_rr_graph, on_unused_input="ignore"
    )
    log_rr = np.array(
        [[log_rr_fn({k: v[c, d] for k, v in values.items()}) for d in range(size[1])]
         for c in range(size[0])]
    )  # fmt: skip
    dims = {name: ("chain", "draw", *[f"{name}_dim_{i}" for i in range(v.ndim - 2)])
            for name, v in values.items()}  # fmt: skip
    post = xr.Dataset({name: (dims[name], v) for name, v in values.items()})
    idata = add_log_prior(model, prepared, xr.DataTree.from_dict({"posterior": post}))
    lp = idata["log_prior"].to_dataset()
    expected = stats.norm.logpdf(log_rr, 0.0, model.model_config["prior_log_rr_sd"]).sum(-1)
    np.testing.assert_allclose(lp["log_rr_prior"].values, expected, rtol=1e-10)
    assert "log_rr_prior" in top_level(lp)
    assert "z_trial_arm" not in top_level(lp)
