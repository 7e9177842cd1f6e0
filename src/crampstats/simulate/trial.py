"""Simulate cramp trials (parallel, crossover, N-of-1, several trials at once) from a design.

The data-generating process follows docs/calibration.md:

* screened subjects have gamma-distributed mean rates (between-subject heterogeneity) and a weekly
  lognormal AR(1) fluctuation (within-subject variability); daily counts are Poisson given both, so
  a treatment-period total is negative binomial with size ``k``;
* a run-in diary with an inclusion threshold selects subjects; regression to the mean and the
  apparent placebo response emerge from this selection plus a modest true placebo effect;
* arm rate ratios (shared across trials with heterogeneity ``tau``), subject-specific effects,
  carry-over and period effects act multiplicatively on the daily rate;
* dropout is a constant treatment-specific hazard, optionally scaled per subject by the run-in
  rate, the early response or the latent rate (``dropout_mechanism``); diary records are missing
  completely at random;
* EMG (cramp threshold frequency on a stepped protocol with right-censoring, after-discharge grade,
  cramp-potential frequency) and adverse events by arm and category.

Every random component draws from its own child of one :class:`numpy.random.SeedSequence`, so a
design and a seed determine the output exactly, and replicates can be spawned independently.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from crampstats.outputs import atomic_dir, to_json
from crampstats.simulate.design import (
    AE_CATEGORIES,
    AE_TERMS,
    ResolvedDesign,
    ar1_mean_variance,
    period_weeks,
    resolve_design,
)

#: Independent random components, each with its own spawned seed (order is part of the output).
COMPONENTS = (
    "trials", "screening", "randomisation", "counts", "missingness", "dropout", "intensity", "emg",
    "adverse_events", "covariates",
)

#: Canonical columns of each output table (docs/data-contract.md), in output order.
COLUMNS = {
    "subjects": ("subject_id", "trial_id", "arm", "sequence", "age", "sex", "etiology",
                 "cramp_origin", "stratum", "withdrawal_day"),
    "diary": ("subject_id", "study_day", "days", "period", "treatment", "cramp_count", "intensity",
              "location"),
    "emg": ("subject_id", "visit", "study_day", "ctf_hz", "ctf_censored", "afterdischarge_grade",
            "cramp_potential_hz"),
    "adverse_events": ("subject_id", "term", "category", "serious", "study_day"),
}

#: Probability that a record with cramps names the subject's usual location (uncertain).
_USUAL_LOCATION = 0.8


@dataclass
class SimulatedTrial:
    """A simulated dataset and the truth behind it.

    Attributes
    ----------
    tables
        ``subjects``, ``diary``, ``emg``, ``adverse_events`` following docs/data-contract.md.
    truth
        Every true parameter (JSON-serialisable), see :func:`simulate`.
    design
        The validated design with defaults filled.
    latent
        Per-subject latent values (``subject_id``, ``trial_id``, ``rate`` = true mean cramps per day
        before any treatment or placebo effect, ``run_in_rate`` = diarised run-in rate); not
        written.
    """

    tables: dict[str, pd.DataFrame]
    truth: dict[str, Any]
    design: dict[str, Any]
    latent: pd.DataFrame = field(default_factory=pd.DataFrame)


def _copy_seed(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    """Return a fresh SeedSequence equal to ``seed`` (spawning never mutates the caller's)."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(
            seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size
        )
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    raise ValueError(f"seed must be a non-negative integer or a SeedSequence, got {seed!r}")


def simulate(design: dict[str, Any], seed: int | np.random.SeedSequence) -> SimulatedTrial:
    """Simulate one dataset (one or several trials) from a design.

    Parameters
    ----------
    design
        A design mapping (``schemas/design.schema.yaml``), raw or as returned by
        :func:`crampstats.simulate.design.load_design`; it is validated (cached by content).
    seed
        Non-negative integer or :class:`numpy.random.SeedSequence`. The same design and seed give
        identical tables; the caller's SeedSequence is not mutated.

    Returns
    -------
    SimulatedTrial
        Tables, truth and design. ``truth`` holds ``arms`` (per-arm ``rr``, ``log_rr``, dropout,
        CTF effect, AE probabilities), ``placebo_effect``, ``baseline_rate``, ``k``, ``k_between``,
        ``within_subject``, ``missing_days`` and ``compliance``, ``inclusion``, ``carryover``,
        ``period_effect``, ``effect_sd``, ``tau``, ``trials`` (per trial: baseline rate, log RR, RR,
        ``n_screened``, ``n_randomised``), ``subject_log_rr`` (crossover / N-of-1, or when
        ``effect_sd`` > 0), ``emg``, ``adverse_events``, ``schedule`` and ``seed``.

    Raises
    ------
    crampstats.config.ConfigError
        If the design is invalid.
    ValueError
        If the seed is not a non-negative integer or SeedSequence.
    """
    root = _copy_seed(seed)
    rd = resolve_design(design)
    d = rd.design
    n_trials = len(rd.trials)
    children = dict(zip(COMPONENTS, root.spawn(len(COMPONENTS)), strict=True))
    per_trial = {
        name: [np.random.default_rng(s) for s in children[name].spawn(n_trials)]
        for name in COMPONENTS if name != "trials"
    }
    trial_rng = np.random.default_rng(children["trials"])
    trial_params = _trial_parameters(rd, trial_rng)

    parts: list[dict[str, dict[str, np.ndarray]]] = []
    trial_truth: dict[str, Any] = {}
    subject_log_rr: dict[str, dict[str, float]] = {}
    latent = []
    for t, params in enumerate(trial_params):
        gens = {name: per_trial[name][t] for name in per_trial}
        arrays, info = _simulate_one(rd, params, gens)
        parts.append(arrays)
        trial_truth[params["id"]] = info["truth"]
        subject_log_rr.update(info["subject_log_rr"])
        latent.append(info["latent"])

    tables = {name: _frame(name, [p[name] for p in parts]) for name in COLUMNS}
    truth = _truth(rd, root, trial_truth, subject_log_rr)
    latent_df = pd.concat(latent, ignore_index=True)
    return SimulatedTrial(tables=tables, truth=truth, design=copy.deepcopy(d), latent=latent_df)


# --------------------------------------------------------------------------------------------
# trial-level parameters


def _trial_parameters(rd: ResolvedDesign, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Draw trial-specific baseline rates and log rate ratios (shared effects plus tau)."""
    d = rd.design
    several = len(rd.trials) > 1
    out = []
    for trial in rd.trials:
        z_base = rng.standard_normal()
        z_arm = rng.standard_normal(len(rd.arm_names))
        if "baseline_rate" in trial:
            rate = float(trial["baseline_rate"])
        elif several:
            rate = d["baseline_rate"] * math.exp(d["trial_baseline_sd"] * z_base)
        else:
            rate = float(d["baseline_rate"])
        log_rr = {}
        for a, name in enumerate(rd.arm_names):
            base = rd.arms[name]["log_rr"]
            log_rr[name] = 0.0 if name == d["control_arm"] else base + d["tau"] * z_arm[a]
        arms = sorted(trial.get("arms") or rd.arm_names)
        if d["type"] == "parallel":
            n_spec = trial.get("n_per_arm", d["n_per_arm"])
            sizes = {a: int(n_spec[a] if isinstance(n_spec, dict) else n_spec) for a in arms}
        else:
            sizes = {"total": int(trial.get("n_subjects", d["n_subjects"]))}
        out.append({"id": trial["id"], "baseline_rate": rate, "log_rr": log_rr, "arms": arms,
                    "sizes": sizes})
    return out


# --------------------------------------------------------------------------------------------
# one trial


def _ar1_paths(rng: np.random.Generator, n: int, weeks: int, sd: float, rho: float) -> np.ndarray:
    """Weekly multipliers ``exp(z - sd^2/2)`` of a stationary Gaussian AR(1) ``z`` (n x weeks)."""
    eps = rng.standard_normal((n, weeks))
    z = np.empty_like(eps)
    z[:, 0] = sd * eps[:, 0]
    innov = sd * math.sqrt(1.0 - rho**2)
    for w in range(1, weeks):  # loop over weeks, vectorised over subjects
        z[:, w] = rho * z[:, w - 1] + innov * eps[:, w]
    return np.exp(z - sd**2 / 2.0)


def _record_layout(rd: ResolvedDesign) -> dict[str, np.ndarray]:
    """Diary records shared by all subjects: start day, length, segment index (cut at segments)."""
    step = rd.design["diary_days"]
    starts, lengths, segs = [], [], []
    for s, seg in enumerate(rd.segments):
        offs = np.arange(0, seg.days, step)
        starts.append(seg.start + offs)
        lengths.append(np.minimum(step, seg.days - offs))
        segs.append(np.full(offs.size, s))
    return {"start": np.concatenate(starts), "days": np.concatenate(lengths),
            "seg": np.concatenate(segs)}


def _screen(rd: ResolvedDesign, params: dict[str, Any], n_needed: int,
            rng: np.random.Generator, layout: dict[str, np.ndarray]) -> dict[str, Any]:
    """Screen candidates in batches until ``n_needed`` pass the run-in inclusion threshold."""
    d = rd.design
    ws = d["within_subject"]
    run_days = rd.segments[0].days
    n_weeks = -(-rd.n_days // 7)
    run_rec = layout["seg"] == 0
    rec_start = layout["start"][run_rec] - rd.first_day
    rec_days = layout["days"][run_rec]
    threshold, per_days = d["inclusion"]["min_cramps"], d["inclusion"]["per_days"]
    shape = rd.k_between
    week_of_day = np.arange(run_days) // 7

    keep: dict[str, list[np.ndarray]] = {"rate": [], "w": [], "counts": [], "miss": [], "obs": []}
    n_screened, n_pass, pass_rate = 0, 0, 0.9
    while n_pass < n_needed:
        batch = max(16, math.ceil((n_needed - n_pass) / max(pass_rate, 0.05) * 1.2) + 8)
        if math.isinf(shape):
            rate = np.full(batch, params["baseline_rate"])
        else:
            rate = params["baseline_rate"] * rng.gamma(shape, 1.0 / shape, batch)
        w = _ar1_paths(rng, batch, n_weeks, ws["sd"], ws["rho"])
        counts = rng.poisson(rate[:, None] * w[:, week_of_day])
        miss = rng.random((batch, rec_days.size)) < d["missing_days"]
        cum = np.concatenate([np.zeros((batch, 1), dtype=np.int64), np.cumsum(counts, 1)], 1)
        rec_counts = cum[:, rec_start + rec_days] - cum[:, rec_start]
        obs_count = np.where(miss, 0, rec_counts).sum(1)
        obs_days = np.where(miss, 0, rec_days[None, :]).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            obs_rate = np.where(obs_days > 0, obs_count / np.maximum(obs_days, 1), np.nan)
        ok = obs_rate * per_days >= threshold if threshold > 0 else np.ones(batch, bool)
        idx = np.flatnonzero(ok)
        need = n_needed - n_pass
        take = idx[:need]
        # screening stops at the subject who completes the sample; later candidates never exist
        n_screened += int(take[-1]) + 1 if take.size == need else batch
        n_pass += take.size
        pass_rate = max(idx.size / batch, 0.01)
        for key, arr in (("rate", rate), ("w", w), ("counts", counts), ("miss", miss),
                         ("obs", obs_rate)):
            keep[key].append(arr[take])
    out = {key: np.concatenate(v) for key, v in keep.items()}
    out["n_screened"] = n_screened
    return out


def _simulate_one(rd: ResolvedDesign, params: dict[str, Any],
                  gens: dict[str, np.random.Generator]) -> tuple[dict, dict]:
    """Simulate one trial; return column arrays per table and its truth."""
    d = rd.design
    arm_names = rd.arm_names
    arm_code = {a: i for i, a in enumerate(arm_names)}
    control = arm_code[d["control_arm"]]
    n_arms = len(arm_names)
    n_slots = rd.n_slots
    layout = _record_layout(rd)

    # ---- randomisation targets ---------------------------------------------------------------
    if d["type"] == "parallel":
        alloc = np.repeat([arm_code[a] for a in params["arms"]],
                          [params["sizes"][a] for a in params["arms"]])
    else:
        alloc = None
    n = alloc.size if alloc is not None else params["sizes"]["total"]

    scr = _screen(rd, params, n, gens["screening"], layout)

    # ---- randomisation: treatment of each slot (n x n_slots) ---------------------------------
    rng = gens["randomisation"]
    inv_letters = {a: letter for letter, a in rd.letters.items()}
    if d["type"] == "parallel":
        slots = rng.permutation(alloc)[:, None]
        sequence = None
    else:
        codes = np.array([arm_code[a] for a in params["arms"]])
        codes = codes[np.argsort([inv_letters[arm_names[c]] for c in codes])]  # letter order
        if d["type"] == "crossover":
            order = rng.permutation(np.resize([0, 1], n))
            slots = np.where(order[:, None] == 0, codes[None, :], codes[::-1][None, :])
        else:
            cycles = n_slots // codes.size
            slots = np.concatenate(
                [rng.permuted(np.tile(codes, (n, 1)), axis=1) for _ in range(cycles)], axis=1
            )
        letter_of = np.array([inv_letters[a] for a in arm_names])
        sequence = np.array(["".join(row) for row in letter_of[slots]], dtype=object)
        # joined per subject: string assembly, not simulation; n is at most a few thousand

    # ---- subject-level effects and daily counts ----------------------------------------------
    rng = gens["counts"]
    u = rng.standard_normal((n, n_arms)) * d["effect_sd"]
    u[:, control] = 0.0
    log_rr_arm = np.array([params["log_rr"][a] for a in arm_names])
    subj_log_rr = log_rr_arm[None, :] + u  # n x arms

    post = [s for s in rd.segments[1:]]
    day_slot = np.concatenate([np.full(s.days, s.slot) for s in post])
    day_carry = np.concatenate([
        np.full(s.days, s.slot - 1 if s.slot > 0 else s.after_slot) for s in post
    ])
    is_treat = day_slot >= 0
    treat_code = np.where(is_treat[None, :], slots[:, np.maximum(day_slot, 0)], -1)  # n x days
    log_mult = np.where(is_treat[None, :],
                        np.take_along_axis(subj_log_rr, np.maximum(treat_code, 0), 1), 0.0)
    if d["carryover"] > 0:
        carry_code = slots[:, np.maximum(day_carry, 0)]
        carry = np.take_along_axis(subj_log_rr, carry_code, 1)
        log_mult += np.where(day_carry[None, :] >= 0, d["carryover"] * carry, 0.0)
    if d["period_effect"] != 0:
        log_mult += np.where(is_treat, d["period_effect"] * day_slot, 0.0)[None, :]
    run_days = rd.segments[0].days
    n_post = day_slot.size
    week_of_day = (run_days + np.arange(n_post)) // 7
    rate = (scr["rate"][:, None] * scr["w"][:, week_of_day] * d["placebo_effect"]
            * np.exp(log_mult))
    counts = np.concatenate([scr["counts"], rng.poisson(rate)], axis=1)  # n x all days

    # ---- missing diary records (drawn before dropout: an early-response dropout reads them) ----
    rng = gens["missingness"]
    r_start, r_days, r_seg = layout["start"], layout["days"], layout["seg"]
    n_rec = r_start.size
    n_run_rec = int((r_seg == 0).sum())
    miss = np.concatenate(
        [scr["miss"], rng.random((n, n_rec - n_run_rec)) < d["missing_days"]], axis=1
    )

    # ---- dropout: constant hazard by current treatment (washout: control hazard) -------------
    rng = gens["dropout"]
    treat_days = int(is_treat.sum())
    hazard = np.array([-math.log1p(-rd.arms[a]["dropout"]) / treat_days for a in arm_names])
    h = hazard[np.where(treat_code >= 0, treat_code, control)]
    mechanism = d.get("dropout_mechanism", {})
    if mechanism.get("mechanism", "mcar") != "mcar":
        h = h * _dropout_multiplier(mechanism, rd, scr["obs"], rate[:, is_treat], counts, miss,
                                    layout)
    cum_h = np.cumsum(h, axis=1)
    e = rng.exponential(size=n)
    dropped = cum_h[:, -1] >= e
    wd_idx = np.argmax(cum_h >= e[:, None], axis=1)
    withdrawal = np.where(dropped, wd_idx + 1, -1)  # study day (day 1 = first post day)
    last_day = n_post
    eff_last = np.where(dropped, withdrawal, last_day)

    # ---- diary records -------------------------------------------------------------------------
    cum = np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(counts, axis=1)], axis=1)
    first = rd.first_day
    keep = r_start[None, :] <= eff_last[:, None]
    end = np.minimum(r_start[None, :] + r_days[None, :] - 1, eff_last[:, None])
    days_eff = end - r_start[None, :] + 1
    i0 = np.broadcast_to(r_start - first, (n, n_rec))
    rows = np.arange(n)[:, None]
    rec_count = cum[rows, np.clip(end - first + 1, 0, None)] - cum[rows, i0]
    seg_slot = np.array([s.slot for s in rd.segments])[r_seg]
    rec_treat = np.where(seg_slot[None, :] >= 0, slots[:, np.maximum(seg_slot, 0)], -1)

    rng = gens["intensity"]
    it = d["intensity"]
    subj_int = it["mean"] + it["subject_sd"] * rng.standard_normal(n)
    shift = np.array([rd.arms[a]["intensity_shift"] for a in arm_names])
    noise = rng.standard_normal((n, n_rec))
    with np.errstate(divide="ignore"):
        sd_rec = it["record_sd"] / np.sqrt(np.maximum(rec_count, 1))
    intensity = subj_int[:, None] + np.where(rec_treat >= 0, shift[rec_treat], 0.0) + sd_rec * noise
    intensity = np.round(np.clip(intensity, 0.0, 10.0), 1)
    loc_names = np.array(sorted(d["locations"]), dtype=object)
    loc_p = np.array([d["locations"][x] for x in loc_names], dtype=float)
    loc_cdf = np.cumsum(loc_p / loc_p.sum())
    usual = np.minimum(np.searchsorted(loc_cdf, rng.random(n), side="right"), loc_names.size - 1)
    fresh = np.minimum(np.searchsorted(loc_cdf, rng.random((n, n_rec)), side="right"),
                       loc_names.size - 1)
    loc = np.where(rng.random((n, n_rec)) < _USUAL_LOCATION, usual[:, None], fresh)

    has = (~miss) & (rec_count > 0)
    period_labels = np.array([s.label for s in rd.segments], dtype=object)
    sel = keep.ravel()
    subj_idx = np.broadcast_to(rows, (n, n_rec)).ravel()[sel]
    arm_obj = np.array(arm_names, dtype=object)
    treat_flat = rec_treat.ravel()[sel]
    diary = {
        "subject": subj_idx,
        "study_day": np.broadcast_to(r_start, (n, n_rec)).ravel()[sel],
        "days": days_eff.ravel()[sel],
        "period": period_labels[np.broadcast_to(r_seg, (n, n_rec)).ravel()[sel]],
        "treatment": np.where(treat_flat >= 0, arm_obj[np.maximum(treat_flat, 0)], None),
        "cramp_count": (rec_count.ravel()[sel], miss.ravel()[sel]),
        "intensity": (intensity.ravel()[sel], ~has.ravel()[sel]),
        "location": np.where(has.ravel()[sel], loc_names[loc.ravel()[sel]], None),
    }

    # ---- covariates ------------------------------------------------------------------------------
    rng = gens["covariates"]
    cov = d["covariates"]
    age = np.round(np.clip(cov["age_mean"] + cov["age_sd"] * rng.standard_normal(n), 18, 99), 1)
    sex = np.where(rng.random(n) < cov["female"], "F", "M").astype(object)
    origins = np.array(sorted(cov["cramp_origin"]), dtype=object)
    o_p = np.array([cov["cramp_origin"][o] for o in origins], dtype=float)
    origin = origins[np.minimum(np.searchsorted(np.cumsum(o_p / o_p.sum()), rng.random(n),
                                                side="right"), origins.size - 1)]
    strata = cov["strata"]
    draw = rng.integers(0, max(len(strata), 1), n)
    stratum = np.array(strata, dtype=object)[draw] if strata else np.full(n, None, dtype=object)

    width = max(4, len(str(n)))
    ids = np.array([f"{params['id']}-{i + 1:0{width}d}" for i in range(n)], dtype=object)
    subjects = {
        "subject": np.arange(n),
        "trial_id": np.full(n, params["id"], dtype=object),
        "arm": arm_obj[slots[:, 0]] if sequence is None else np.full(n, None, dtype=object),
        "sequence": sequence if sequence is not None else np.full(n, None, dtype=object),
        "age": age,
        "sex": sex,
        "etiology": np.full(n, cov["etiology"], dtype=object),
        "cramp_origin": origin,
        "stratum": stratum,
        "withdrawal_day": (np.maximum(withdrawal, 1), ~dropped),
    }

    emg, emg_truth = _emg(rd, gens["emg"], n, slots, eff_last)
    aes = _adverse_events(rd, gens["adverse_events"], slots, eff_last)

    # ---- truth -----------------------------------------------------------------------------------
    exposed = np.bincount(slots.ravel(), minlength=n_arms) if d["type"] == "parallel" else \
        np.array([n if a in params["arms"] else 0 for a in arm_names])
    truth = {
        "baseline_rate": params["baseline_rate"],
        "log_rr": dict(params["log_rr"]),
        "rr": {a: math.exp(v) for a, v in params["log_rr"].items()},
        "arms": list(params["arms"]),
        "n_screened": scr["n_screened"],
        "n_randomised": {a: int(exposed[arm_code[a]]) for a in params["arms"]},
        "n_randomised_total": n,
        "screen_pass_fraction": n / scr["n_screened"],
        "n_withdrawn": int(dropped.sum()),
        "emg": emg_truth,
    }
    subject_log_rr = {}
    if d["type"] != "parallel" or d["effect_sd"] > 0:
        active = [arm_code[a] for a in params["arms"] if arm_code[a] != control]
        for i in range(n):  # truth bookkeeping only (JSON), not simulation
            subject_log_rr[ids[i]] = {arm_names[a]: float(subj_log_rr[i, a]) for a in active}
    latent = pd.DataFrame({"subject_id": ids, "trial_id": params["id"], "rate": scr["rate"],
                           "run_in_rate": scr["obs"]})
    arrays = {"subjects": subjects, "diary": diary, "emg": emg, "adverse_events": aes}
    for table in arrays.values():  # map subject indices to ids
        table["subject_id"] = ids[table.pop("subject")]
    return arrays, {"truth": truth, "subject_log_rr": subject_log_rr, "latent": latent}


# --------------------------------------------------------------------------------------------
# dropout that depends on the data (design key dropout_mechanism)


def _standardised(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / sd`` over the finite values; 0 where ``x`` is not finite or sd is 0."""
    ok = np.isfinite(x)
    sd = float(np.std(x[ok])) if ok.any() else 0.0
    if sd == 0.0:
        return np.zeros_like(x)
    return np.where(ok, (x - np.mean(x[ok])) / sd, 0.0)


def _dropout_multiplier(mechanism: dict[str, Any], rd: ResolvedDesign, run_in_rate: np.ndarray,
                        treat_rate: np.ndarray, counts: np.ndarray, miss: np.ndarray,
                        layout: dict[str, np.ndarray]) -> np.ndarray:
    """Per-subject, per-day multiplier of the dropout hazard (n x days after the run-in).

    ``exp(strength z) / mean(exp(strength z))``, ``z`` the standardised log of the rate the
    mechanism reads (schemas/design.schema.yaml, ``dropout_mechanism``): the diarised run-in
    rate (observed: missing at random), the diarised early-treatment rate over it (observed
    before the hazard changes: missing at random) or the latent treatment-period mean rate
    ``treat_rate`` (never observed: missing not at random). Half a cramp is added to the
    diarised counts so that a cramp-free diary has a finite log rate.
    """
    run_days = rd.segments[0].days
    n, n_post = counts.shape[0], counts.shape[1] - run_days
    log_runin = np.log(run_in_rate + 0.5 / run_days)
    start = 0
    if mechanism["mechanism"] == "mar_runin":
        x = log_runin
    elif mechanism["mechanism"] == "mnar":
        x = np.log(treat_rate.mean(axis=1))
    else:  # mar_early_response: diarised days of the first early_weeks of treatment
        start = 7 * int(mechanism["early_weeks"])
        r_days = layout["days"]
        rec_of_day = np.repeat(np.arange(r_days.size), r_days)
        day = np.repeat(layout["start"] - rd.first_day, r_days) + (
            np.arange(rec_of_day.size) - np.repeat(np.cumsum(r_days) - r_days, r_days)
        )
        diarised = np.ones(counts.shape, dtype=bool)
        diarised[:, day] = ~miss[:, rec_of_day]
        early = slice(run_days, run_days + start)
        days_obs = diarised[:, early].sum(axis=1)
        count_obs = np.where(diarised[:, early], counts[:, early], 0).sum(axis=1)
        x = np.log((count_obs + 0.5) / np.maximum(days_obs, 1)) - log_runin
    m = np.exp(float(mechanism["strength"]) * _standardised(x))
    out = np.ones((n, n_post))
    out[:, start:] = (m / m.mean())[:, None]
    return out


# --------------------------------------------------------------------------------------------
# EMG and adverse events


def _emg(rd: ResolvedDesign, rng: np.random.Generator, n: int, slots: np.ndarray,
         eff_last: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    """CTF on the stepped protocol, after-discharge grade and cramp-potential frequency."""
    d = rd.design
    e = d["emg"]
    sigma = rd.ctf_sigma
    sd_subj, sd_noise = sigma * math.sqrt(e["icc"]), sigma * math.sqrt(1.0 - e["icc"])
    if e["baseline_visits"] == 2:
        visits = [("baseline_1", rd.first_day, -1), ("baseline_2", 0, -1)]
    else:
        visits = [("baseline", 0, -1)]
    for seg in rd.segments[1:]:
        if seg.slot >= 0:
            name = "end" if d["type"] == "parallel" else f"end_{seg.label}"
            visits.append((name, seg.start + seg.days - 1, seg.slot))
    n_v = len(visits)
    b = sd_subj * rng.standard_normal(n)
    noise = sd_noise * rng.standard_normal((n, n_v))
    eps_ad = rng.standard_normal((n, n_v))
    cp = rng.standard_normal((n, n_v))
    effect = np.log1p(np.array([rd.arms[a]["ctf_effect"] for a in rd.arm_names]))
    v_slot = np.array([v[2] for v in visits])
    v_day = np.array([v[1] for v in visits])
    treat = np.where(v_slot[None, :] >= 0, slots[:, np.maximum(v_slot, 0)], -1)
    log_med = math.log(e["median_hz"])
    latent = log_med + b[:, None] + noise + np.where(treat >= 0, effect[np.maximum(treat, 0)], 0.0)
    ctf_latent = np.exp(latent)
    p = e["protocol"]
    censored = ctf_latent > p["max_hz"]
    steps = np.ceil(np.maximum(ctf_latent - p["start_hz"], 0.0) / p["step_hz"] - 1e-12)
    ctf = np.minimum(p["start_hz"] + p["step_hz"] * steps, p["max_hz"])
    probs = np.array(e["afterdischarge_probs"], dtype=float)
    cuts = stats.norm.ppf(np.cumsum(probs / probs.sum())[:-1])
    rho = e["afterdischarge_correlation"]
    zstd = (latent - log_med) / sigma
    grade = np.searchsorted(cuts, rho * zstd + math.sqrt(1.0 - rho**2) * eps_ad)
    cp_hz = np.round(e["cramp_potential_median_hz"] * np.exp(e["cramp_potential_sdlog"] * cp), 1)
    present = v_day[None, :] <= eff_last[:, None]
    if not e["enabled"]:
        present[:] = False
    sel = present.ravel()
    subj = np.broadcast_to(np.arange(n)[:, None], (n, n_v)).ravel()[sel]
    names = np.array([v[0] for v in visits], dtype=object)
    table = {
        "subject": subj,
        "visit": np.broadcast_to(names, (n, n_v)).ravel()[sel],
        "study_day": np.broadcast_to(v_day, (n, n_v)).ravel()[sel],
        "ctf_hz": (np.round(ctf, 3).ravel()[sel], np.zeros(int(sel.sum()), bool)),
        "ctf_censored": censored.ravel()[sel],
        "afterdischarge_grade": (grade.ravel()[sel], np.zeros(int(sel.sum()), bool)),
        "cramp_potential_hz": (cp_hz.ravel()[sel], censored.ravel()[sel]),
    }
    truth = {
        "median_hz": e["median_hz"], "sd_hz": e["sd_hz"], "sigma_log": sigma,
        "sigma_subject": sd_subj, "sigma_noise": sd_noise, "icc": e["icc"],
        "protocol": dict(p), "censoring_probability_baseline": _censor_p(log_med, sigma, p),
        "afterdischarge_cutpoints": [float(c) for c in cuts],
        "afterdischarge_correlation": rho,
        "cramp_potential_median_hz": e["cramp_potential_median_hz"],
        "cramp_potential_sdlog": e["cramp_potential_sdlog"],
        "visits": {v[0]: v[1] for v in visits},
    }
    return table, truth


def _censor_p(log_med: float, sigma: float, protocol: dict[str, float]) -> float:
    return float(stats.norm.sf((math.log(protocol["max_hz"]) - log_med) / sigma))


def _adverse_events(rd: ResolvedDesign, rng: np.random.Generator, slots: np.ndarray,
                    eff_last: np.ndarray) -> dict[str, Any]:
    """At most one event per category and treatment period, constant hazard by arm and category."""
    d = rd.design
    ref_days = 7.0 * d["adverse_events"]["reference_weeks"]
    n = slots.shape[0]
    periods = [s for s in rd.segments if s.slot >= 0]
    out: dict[str, list[np.ndarray]] = {k: [] for k in
                                        ("subject", "term", "category", "serious", "study_day")}
    for cat in AE_CATEGORIES:  # loop over categories and periods, vectorised over subjects
        p_cat = np.array([rd.arms[a]["adverse_events"][cat] for a in rd.arm_names])
        haz = -np.log1p(-np.minimum(p_cat, 1 - 1e-12)) / ref_days
        terms = np.array(AE_TERMS[cat], dtype=object)
        p_serious = d["adverse_events"]["serious"][cat]
        for seg in periods:
            expo = np.clip(np.minimum(seg.start + seg.days - 1, eff_last) - seg.start + 1, 0, None)
            prob = -np.expm1(-haz[slots[:, seg.slot]] * expo)
            hit = rng.random(n) < prob
            day = seg.start + np.floor(rng.random(n) * expo).astype(np.int64)
            serious = rng.random(n) < p_serious
            term = terms[rng.integers(0, terms.size, n)]
            idx = np.flatnonzero(hit)
            out["subject"].append(idx)
            out["term"].append(term[idx])
            out["category"].append(np.full(idx.size, cat, dtype=object))
            out["serious"].append(serious[idx])
            out["study_day"].append(day[idx])
    cat_arrays = {k: np.concatenate(v) for k, v in out.items()}
    order = np.lexsort((cat_arrays["category"].astype(str), cat_arrays["study_day"],
                        cat_arrays["subject"]))
    return {k: v[order] for k, v in cat_arrays.items()}


# --------------------------------------------------------------------------------------------
# tables and truth


def _frame(name: str, parts: list[dict[str, Any]]) -> pd.DataFrame:
    """Assemble one canonical table from per-trial column arrays with contract dtypes."""
    cols: dict[str, Any] = {}
    for col in COLUMNS[name]:
        pieces = [p[col] for p in parts]
        if isinstance(pieces[0], tuple):  # (values, mask) for nullable numerics
            values = np.concatenate([v for v, _ in pieces])
            mask = np.concatenate([m for _, m in pieces])
            if values.dtype.kind == "f":
                cols[col] = pd.arrays.FloatingArray(values.astype(np.float64), mask)
            else:
                cols[col] = pd.arrays.IntegerArray(values.astype(np.int64), mask)
            continue
        values = np.concatenate(pieces)
        if values.dtype == bool:
            cols[col] = pd.array(values, dtype="boolean")
        elif values.dtype.kind in "iu":
            cols[col] = pd.array(values.astype(np.int64), dtype="Int64")
        elif values.dtype.kind == "f":
            cols[col] = pd.array(values, dtype="Float64")
        else:
            cols[col] = pd.array(values, dtype="string")
    return pd.DataFrame(cols)


def _truth(rd: ResolvedDesign, root: np.random.SeedSequence, trial_truth: dict[str, Any],
           subject_log_rr: dict[str, dict[str, float]]) -> dict[str, Any]:
    d = rd.design
    ws = d["within_subject"]

    truth: dict[str, Any] = {
        "seed": {"entropy": str(root.entropy), "spawn_key": list(root.spawn_key)},
        "design_type": d["type"],
        "control_arm": d["control_arm"],
        "arms": copy.deepcopy(rd.arms),
        "placebo_effect": d["placebo_effect"],
        "log_placebo_effect": math.log(d["placebo_effect"]),
        "baseline_rate": d["baseline_rate"],
        "k": d["k"],
        "k_between": rd.k_between,
        "within_subject": {
            "sd": ws["sd"], "rho": ws["rho"],
            "period_mean_variance": ar1_mean_variance(ws["sd"], ws["rho"], period_weeks(d)),
        },
        "dropout": {a: v["dropout"] for a, v in rd.arms.items()},
        "missing_days": d["missing_days"],
        "compliance": 1.0 - d["missing_days"],
        "inclusion": dict(d["inclusion"]),
        "carryover": d["carryover"],
        "period_effect": d["period_effect"],
        "effect_sd": d["effect_sd"],
        "tau": d["tau"],
        "trial_baseline_sd": d["trial_baseline_sd"],
        "trials": trial_truth,
        "n_screened": sum(t["n_screened"] for t in trial_truth.values()),
        "n_randomised": sum(t["n_randomised_total"] for t in trial_truth.values()),
        "adverse_events": {
            "reference_weeks": d["adverse_events"]["reference_weeks"],
            "serious": dict(d["adverse_events"]["serious"]),
            "probabilities": {a: dict(v["adverse_events"]) for a, v in rd.arms.items()},
        },
        "schedule": [{"period": s.label, "start_day": s.start, "days": s.days} for s in
                     rd.segments],
        "subject_log_rr": subject_log_rr,
    }
    if d["type"] != "parallel":
        truth["letters"] = dict(rd.letters)
    if "dropout_mechanism" in d:  # absent from designs without it: their truth is unchanged
        truth["dropout_mechanism"] = dict(d["dropout_mechanism"])
    return truth


def _csv_text(df: pd.DataFrame) -> str:
    """Deterministic CSV: no index, newline endings, NA empty, booleans as ``true``/``false``."""
    out = df.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.BooleanDtype):
            out[col] = out[col].map({True: "true", False: "false"}).astype("string")
    return out.to_csv(index=False, lineterminator="\n", na_rep="")


def write_trial(trial: SimulatedTrial, out_dir: str | Path) -> None:
    """Write a simulated trial folder atomically.

    Writes ``subjects.csv``, ``diary.csv``, ``emg.csv`` and ``adverse_events.csv`` (the last two
    only when they have rows), ``design.yaml``
    (the design with defaults filled, headed by the command that regenerates the folder) and
    ``truth.json``. The folder is replaced only when everything is written.

    Parameters
    ----------
    trial
        Output of :func:`simulate`.
    out_dir
        Target folder (replaced as a whole).
    """
    out_dir = Path(out_dir)
    seed = trial.truth.get("seed", {})
    spawn = seed.get("spawn_key") or []
    seed_text = seed.get("entropy", "?") + (f" (spawn_key {spawn})" if spawn else "")
    header = (
        "# Simulation design with every default filled (schemas/design.schema.yaml).\n"
        f"# Generated with seed {seed_text}; regenerate this folder (DIR) with:\n"
        f"#   crampstats simulate --design DIR/design.yaml --seed {seed.get('entropy', '?')}"
        " --out DIR\n"
    )
    with atomic_dir(out_dir) as tmp:
        for name in COLUMNS:
            # The contract refuses header-only tables; an optional table with no rows is omitted.
            if trial.tables[name].empty and name in ("emg", "adverse_events"):
                continue
            (tmp / f"{name}.csv").write_text(_csv_text(trial.tables[name]), encoding="utf-8",
                                             newline="\n")
        design_text = header + yaml.safe_dump(trial.design, sort_keys=True,
                                              default_flow_style=False, allow_unicode=True)
        (tmp / "design.yaml").write_text(design_text, encoding="utf-8", newline="\n")
        (tmp / "truth.json").write_text(to_json(trial.truth), encoding="utf-8", newline="\n")


def summary_text(trial: SimulatedTrial) -> str:
    """Return a few lines describing a simulated trial (subjects per arm, screened, diary records).

    Parameters
    ----------
    trial
        Output of :func:`simulate`.

    Returns
    -------
    str
        Human-readable summary without a trailing newline.
    """
    subj = trial.tables["subjects"]
    diary = trial.tables["diary"]
    truth = trial.truth
    lines = [f"design {truth['design_type']}: {len(subj)} subjects randomised of "
             f"{truth['n_screened']} screened in {len(truth['trials'])} trial(s)"]
    if truth["design_type"] == "parallel":
        counts = subj["arm"].value_counts().sort_index()
        lines.append("per arm: " + ", ".join(f"{a} {int(c)}" for a, c in counts.items()))
    else:
        counts = subj["sequence"].value_counts().sort_index()
        letters = ", ".join(f"{k}={v}" for k, v in truth["letters"].items())
        lines.append(f"sequences ({letters}): "
                     + ", ".join(f"{a} {int(c)}" for a, c in counts.items()))
    n_missing = int(diary["cramp_count"].isna().sum())
    lines.append(f"diary records: {len(diary)} ({n_missing} not completed); "
                 f"withdrawn: {int(subj['withdrawal_day'].notna().sum())}; "
                 f"emg assessments: {len(trial.tables['emg'])}; "
                 f"adverse events: {len(trial.tables['adverse_events'])}")
    return "\n".join(lines)
