"""Helpers shared by the test modules, imported as ``helpers`` (``pythonpath = ["tests"]``).

Test modules never import each other: what more than one of them needs lives here (plain
functions and constants) or in ``tests/conftest.py`` (fixtures, e.g. the session-scoped
``example_results``).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

#: The repository root, its bundled example trials and the main configuration.
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
EXAMPLE = DATA / "example"
CONFIG = ROOT / "config" / "config.yaml"
#: The arms of ``data/example``, in the order of ``config/config.yaml``.
EXAMPLE_ARMS = ["placebo", "mexiletine", "quinine", "vitamin_b_complex", "magnesium"]
#: Cores for sampling (two are shared by the whole suite).
CORES = 2
#: The reduced sampler of the secondary-endpoint model tests.
SAMPLER = {"chains": 4, "draws": 500, "tune": 500, "cores": CORES}


# ---------------------------------------------------------------------------------------------
# Example trials: validated and derived as the workflow does
# ---------------------------------------------------------------------------------------------
def validate_and_derive(
    data: Path, config_path: Path | None = CONFIG
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Validate ``data`` and derive its analysis datasets in memory (as ``analyze`` does).

    ``config_path`` is a main or trial config (``None``: defaults). Returns the derived datasets
    and the resolved trial config.
    """
    from crampstats.config import load_trial_config
    from crampstats.derive import derive_all
    from crampstats.validate import validate

    result = validate(data, load_trial_config(config_path, data))
    assert result.ok, "\n".join(str(p) for p in result.problems)
    config = dict(result.config)
    return derive_all(result.tables, config), config


def write_example_results(trial: str, out: Path) -> Path:
    """``out/validated`` and ``out/derived`` of ``data/<trial>``, as ``make run`` writes them.

    The workflow's ``validate`` and ``derive`` rules, in-process: ``crampstats validate
    data/<trial> --config config/config.yaml --out .../validated``, then ``crampstats derive``.
    No fits. Returns ``out``.
    """
    from crampstats.config import load_trial_config
    from crampstats.derive import derive_all, write_derived
    from crampstats.validate import read_validated, validate, write_validated

    data = DATA / trial
    result = validate(data, load_trial_config(CONFIG, data))
    assert result.ok, "\n".join(str(p) for p in result.problems)
    write_validated(result, out / "validated")
    validated = read_validated(out / "validated")
    write_derived(derive_all(validated.tables, validated.config), out / "derived", validated)
    return out


def simulated_derived(design: Mapping[str, Any], seed: Any, **config: Any):
    """A trial from the simulator and its derived datasets (config: the design's type + ``config``).

    Returns ``(trial, derived)``.
    """
    from crampstats.derive import derive_all
    from crampstats.simulate import simulate

    trial = simulate(dict(design), seed)
    return trial, derive_all(trial.tables, {"design": trial.design["type"], **config})


# ---------------------------------------------------------------------------------------------
# Subject covariates and sites with known effects (the count models' covariate tests)
# ---------------------------------------------------------------------------------------------
#: Log-rate effect of one kg/m2 of BMI and of each severity level (``mild`` is the reference).
BMI_PER_UNIT = 0.04
SEVERITY = {"mild": 0.0, "moderate": 0.3, "severe": 0.6}


def subject_covariates(
    rng: np.random.Generator, n: int, *, n_sites: int = 12, site_sd: float = 0.4
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """``n`` subjects' ``bmi`` (numeric), ``severity`` (3 levels) and ``site`` (``site01``, ...).

    Returns the columns (subject order), each subject's log-rate term ``BMI_PER_UNIT * (bmi -
    27) + SEVERITY[severity] + site effect`` (site effects ``Normal(0, site_sd)``) and the
    truth: ``bmi_per_unit``, ``severity``, ``site_sd``, ``site_effects`` (label -> value).
    """
    bmi = np.round(rng.normal(27.0, 4.0, n), 1)
    severity = rng.choice(list(SEVERITY), n)
    site_index = rng.integers(0, n_sites, n)
    site_effects = rng.normal(0.0, site_sd, n_sites)
    labels = np.array([f"site{j + 1:02d}" for j in range(n_sites)])
    term = (
        BMI_PER_UNIT * (bmi - 27.0)
        + np.array([SEVERITY[s] for s in severity])
        + site_effects[site_index]
    )
    columns = pd.DataFrame({"bmi": bmi, "severity": severity, "site": labels[site_index]})
    truth = {
        "bmi_per_unit": BMI_PER_UNIT,
        "severity": dict(SEVERITY),
        "site_sd": site_sd,
        "site_effects": dict(zip(labels.tolist(), site_effects.tolist(), strict=True)),
    }
    return columns, term, truth


def covariate_trial(
    rng: np.random.Generator,
    rate_ratios: Mapping[str, float],
    n_per_arm: int,
    *,
    n_sites: int = 12,
    site_sd: float = 0.4,
    trial_id: str = "sim",
    **simulate: Any,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """A parallel trial (``periods``, ``weekly``) whose subjects' rates follow their covariates.

    :func:`subject_covariates` gives every subject ``bmi``, ``severity`` and ``site`` and a
    log-rate term that :func:`crampstats.models.synthetic.simulate_parallel_trial` adds to
    the subject's rate (run-in covariate entering as the models assume); both frames carry the
    three columns, as ``crampstats.fit.model_frame`` joins them. ``simulate`` goes to the
    simulator. Truth: the simulator's plus :func:`subject_covariates`'.
    """
    from crampstats.models.synthetic import simulate_parallel_trial

    n = n_per_arm * len(rate_ratios)
    columns, term, extra = subject_covariates(rng, n, n_sites=n_sites, site_sd=site_sd)
    periods, weekly, truth = simulate_parallel_trial(
        rng, rate_ratios, n_per_arm, baseline="independent", trial_id=trial_id,
        extra_log_rate=term, **simulate,
    )  # fmt: skip
    columns.insert(0, "subject_id", periods["subject_id"].to_numpy())
    periods = periods.merge(columns, on="subject_id", validate="one_to_one")
    weekly = weekly.merge(columns, on="subject_id", validate="many_to_one")
    return periods, weekly, {**truth, **extra}


def model_scale_beta(frame: pd.DataFrame, truth: Mapping[str, Any]) -> dict[str, float]:
    """The true ``beta`` on a model's scale: BMI per SD of ``frame`` (the subjects analysed,
    one row each), severity levels against ``mild``."""
    sd = float(np.asarray(frame["bmi"], dtype=float).std())
    out = {"bmi": truth["bmi_per_unit"] * sd}
    out.update({f"severity[{lev}]": v for lev, v in truth["severity"].items() if lev != "mild"})
    return out


# ---------------------------------------------------------------------------------------------
# Posterior draws
# ---------------------------------------------------------------------------------------------
def interval(values: Any, level: float = 0.95) -> tuple[float, float]:
    """Equal-tailed interval of all draws in ``values`` (an array or a DataArray)."""
    tail = (1 - level) / 2
    lo, hi = np.quantile(np.ravel(np.asarray(values)), [tail, 1 - tail])
    return float(lo), float(hi)


def draws_of(idata: xr.DataTree, name: str, **sel: Any) -> np.ndarray:
    """All draws of posterior variable ``name`` (selected by ``sel``), flattened."""
    return np.ravel(idata["posterior"][name].sel(**sel).values)


def check_recovered(draws: Any, truth: float, label: str, *, closed: bool = False) -> None:
    """Truth inside the central 95 % interval (``closed``: ends included), median within 2 SDs."""
    draws = np.ravel(np.asarray(draws))
    lo, hi = np.quantile(draws, [0.025, 0.975])
    inside = lo <= truth <= hi if closed else lo < truth < hi
    assert inside, f"{label}: truth {truth:.4g} outside [{lo:.4g}, {hi:.4g}]"
    z = (np.median(draws) - truth) / draws.std()
    assert abs(z) < 2.0, f"{label}: bias {z:.2f} posterior SDs"


def check_joint(draws: np.ndarray, truth: np.ndarray, names: list[str]) -> None:
    """Truth inside the posterior's joint 95 % region (normal approximation), no large bias.

    ``draws`` has one column per parameter. Arm effects share the control arm (and cutpoints),
    so their errors are correlated (an unlucky control group moves all of them); one joint
    check at 95 % has the stated false-alarm rate where a 95 % check per parameter would not.
    """
    dev = draws.mean(axis=0) - truth
    distance = float(dev @ np.linalg.solve(np.cov(draws.T), dev))
    assert distance < stats.chi2.ppf(0.95, truth.size), (
        f"squared Mahalanobis distance {distance:.1f} of the truth, {truth.size} parameters"
    )
    z = (np.median(draws, axis=0) - truth) / draws.std(axis=0)
    assert (np.abs(z) < 3.0).all(), dict(zip(names, z.round(2), strict=True))


def one_draw(
    values: Mapping[str, Any],
    arms: list[str],
    *,
    dims: Mapping[str, tuple[str, ...]] | None = None,
    coords: Mapping[str, list[str]] | None = None,
) -> xr.DataTree:
    """A fit of one chain and one draw holding ``values`` (natural scale).

    A scalar is a ``(chain, draw)`` variable; an array runs over ``arm`` unless ``dims`` names
    its dimensions (their labels in ``coords``).
    """
    dims = dims or {}
    ds = xr.Dataset(
        {
            k: (
                ("chain", "draw", *dims.get(k, ("arm",) if np.ndim(v) else ())),
                np.reshape(v, (1, 1, *np.shape(v))),
            )
            for k, v in values.items()
        },
        coords={"arm": arms, **(coords or {})},
    )
    return xr.DataTree.from_dict({"posterior": ds})


# ---------------------------------------------------------------------------------------------
# A small raw trial (CSV text, as a site would export it) for the data contract
# ---------------------------------------------------------------------------------------------
Frames = dict[str, pd.DataFrame]
#: Arms of :func:`small_trial`.
SMALL_TRIAL_ARMS = ["placebo", "mexiletine"]


def small_trial(design: str = "parallel") -> Frames:
    """A valid 4-subject trial: run-in days -3..0, treatment days 1..8 (crossover: 1-4, 5-8)."""
    ids = ["S1", "S2", "S3", "S4"]
    subjects = pd.DataFrame({
        "subject_id": ids,
        "trial_id": "t1",
        "arm": ["placebo", "mexiletine", "placebo", "mexiletine"],
        "sequence": "",
        "age": ["61.5", "70", "55.25", "80"],
        "sex": ["F", "M", "F", "other"],
        "etiology": ["idiopathic", "nlc_elderly", "pregnancy", "als"],
        "cramp_origin": ["neurogenic", "unknown", "myogenic", "neurogenic"],
        "stratum": "",
        "withdrawal_day": ["", "", "", "8"],
    })
    rows = []
    for i, sid in enumerate(ids):
        for day in range(-3, 9):
            if design == "parallel":
                period, treatment = ("run-in" if day <= 0 else "treatment"), ""
            else:
                seq = ["placebo", "mexiletine"] if i % 2 == 0 else ["mexiletine", "placebo"]
                period = "run-in" if day <= 0 else ("1" if day <= 4 else "2")
                treatment = "" if day <= 0 else seq[0 if day <= 4 else 1]
            count = (i + day) % 3
            rows.append({"subject_id": sid, "study_day": str(day), "days": "1", "period": period,
                         "treatment": treatment, "cramp_count": str(count),
                         "intensity": f"{4 + 0.5 * count:g}" if count else "",
                         "location": "calf" if count else ""})
    diary = pd.DataFrame(rows)
    if design != "parallel":
        subjects["arm"] = ""
        subjects["sequence"] = ["AB", "BA", "AB", "BA"]
    emg = pd.DataFrame({
        "subject_id": [s for s in ids for _ in range(2)],
        "visit": ["baseline", "end"] * 4,
        "study_day": ["0", "8"] * 4,
        "ctf_hz": ["12", "14.5", "40", "18", "10", "", "22", "24"],
        "ctf_censored": ["false", "no", "true", "N", "0", "false", "false", "false"],
        "afterdischarge_grade": ["1", "0", "4", "2", "3", "", "0", "1"],
        "cramp_potential_hz": ["80.5", "", "70", "66", "90", "", "75", "71"],
    })
    adverse_events = pd.DataFrame({
        "subject_id": ["S2", "S4"], "term": ["Nausea", "Tinnitus"],
        "category": ["gastrointestinal", "cinchonism"], "serious": ["false", "Y"],
        "study_day": ["3", "5"],
    })
    return {"subjects": subjects, "diary": diary, "emg": emg, "adverse_events": adverse_events}


def write_csv(frames: Frames, folder: Path) -> Path:
    """Write each frame as ``<name>.csv`` into ``folder`` (created); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


# ---------------------------------------------------------------------------------------------
# The report: hostile names, a small HTML reader (stdlib only), self-containment
# ---------------------------------------------------------------------------------------------
#: Markup for names (:func:`hostile_copy`): an arm that would run script, a subject that would
#: request an image and run its error handler, with quotes and an ampersand.
HOSTILE_ARM = "<script>alert(1)</script>"
HOSTILE_ID = "<img src=x onerror=alert(2)> O'Brien & \"Sons\""


def hostile_copy(folder: Path, *, arm: str, subject: str) -> Path:
    """``data/example`` copied to ``folder`` with markup for names; a sparse diary.

    Arm ``magnesium`` becomes ``arm`` and subject ``example-0001`` becomes ``subject`` in every
    table; most of that subject's treatment days are undiarised, so validation warns with a
    message naming the subject. Returns ``folder``.
    """
    shutil.copytree(EXAMPLE, folder)
    for csv in sorted(folder.glob("*.csv")):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        df["subject_id"] = df["subject_id"].replace("example-0001", subject)
        for col in ("arm", "treatment"):
            if col in df:
                df[col] = df[col].replace("magnesium", arm)
        if csv.stem == "diary":
            sparse = (df["subject_id"] == subject) & (df["study_day"].astype(int) > 10)
            df.loc[sparse, ["cramp_count", "intensity", "location"]] = ""
        df.to_csv(csv, index=False)
    return folder


VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"}


class Page(HTMLParser):
    """Collects tags, attributes, ids, text per element id, table cells and balance errors."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.results: list[tuple[dict[str, str | None], str]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._li: dict[str, str | None] | None = None
        self._li_text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs_d = dict(attrs)
        self.tags.append((tag, attrs_d))
        if "id" in attrs_d:
            self.ids.append(str(attrs_d["id"]))
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "li" and "result" in (attrs_d.get("class") or "").split():
            self._li, self._li_text = attrs_d, []
        if tag == "table" and attrs_d.get("id"):
            self._table = str(attrs_d["id"])
            self.tables[self._table] = []
        if tag == "tr" and self._table:
            self.tables[self._table].append([])
        if tag in ("td", "th") and self._table:
            self._cell = []

    def handle_startendtag(self, tag, attrs):
        attrs_d = dict(attrs)
        self.tags.append((tag, attrs_d))
        if "id" in attrs_d:
            self.ids.append(str(attrs_d["id"]))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()
        if tag == "li" and self._li is not None:
            self.results.append((self._li, "".join(self._li_text).strip()))
            self._li = None
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._li is not None:
            self._li_text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def assert_self_contained(html: str) -> None:
    """No script, no event handler, no remote or non-fragment reference; a strict CSP."""
    page = Page(html)
    tags = {t for t, _ in page.tags}
    assert "script" not in tags and not re.search(r"<\s*script", html, re.IGNORECASE)
    assert not tags & {"img", "link", "iframe", "object", "embed", "base", "foreignobject"}
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            value = value or ""
            assert not name.startswith("on"), (tag, name)  # no event handlers
            if name in ("src", "href", "xlink:href", "action", "data"):
                assert value.startswith("#"), (tag, name, value)
            assert "javascript:" not in value.lower()
    assert "@import" not in html
    for m in re.finditer(r"url\(\s*([^)]*)\)", html):
        assert m.group(1).startswith("#"), m.group(0)
    assert "http://" not in html and "https://" not in html
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert csp and "default-src 'none'" in str(csp[0]["content"])


def hand_built_nb_totals(derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                         log_rr: list[float], sd: float = 0.15, draws: int = 4000, seed: int = 5,
                         model_name: str = "nb_totals"):
    """A primary ``nb_totals`` fit record with posterior draws placed by hand (no sampling).

    ``log_rr ~ Normal(log_rr, sd)`` per active arm (model order), control log rate
    ``Normal(log 0.9, 0.05)``, run-in slope ``Normal(0.8, 0.05)``, ``k = 3``; on the trial's
    prepared data. Returns ``{model_name: FitRecord}`` for the verdict tables.
    ``model_name="frailty_weekly"`` places the same draws on the weekly model (its size ``phi``
    = 3, a flat week trend).
    """
    from crampstats.catalogue import count_entry
    from crampstats.compare.tables import FitRecord
    from crampstats.fit import make_model, model_frame

    entry = count_entry(model_name)
    model = make_model(entry, config)
    frame = model_frame(entry, derived, config)
    prepared = model.prepare(frame)
    rng = np.random.default_rng(seed)
    arms = prepared.coords["arm"]
    size = "k" if model_name == "nb_totals" else "phi"
    post = xr.Dataset(
        {
            "log_rr": (("chain", "draw", "arm"), rng.normal(log_rr, sd, (1, draws, len(arms)))),
            "alpha": (("chain", "draw"), rng.normal(np.log(0.9), 0.05, (1, draws))),
            "b": (("chain", "draw"), rng.normal(0.8, 0.05, (1, draws))),
            size: (("chain", "draw"), np.full((1, draws), 3.0)),
        },
        coords={"chain": [0], "draw": np.arange(draws), "arm": arms},
    )
    if model.model_config.get("trend"):
        post["trend"] = (("chain", "draw"), np.zeros((1, draws)))
    idata = xr.DataTree.from_dict({"posterior": post, "constant_data": prepared.subject_data})
    return {model_name: FitRecord(entry, model, idata, frame, prepared)}


def hand_built_crossover(derived: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                         log_rr: float, sigma_d: float, k: float, rate: float = 2.0,
                         draws: int = 2000, seed: int = 5):
    """A primary ``crossover`` fit record with posterior draws placed by hand (no sampling).

    Every subject's control rate is ``rate`` cramps a day (``a_i = log rate``, no period
    effects), ``log_rr ~ Normal(log_rr, 0.1)`` per active arm, ``sigma_d`` and ``k`` fixed; on
    the trial's prepared data. Returns ``{"crossover": FitRecord}`` for the verdict tables.
    """
    from crampstats.catalogue import count_entry
    from crampstats.compare.tables import FitRecord
    from crampstats.fit import make_model, model_frame

    entry = count_entry("crossover")
    model = make_model(entry, config)
    frame = model_frame(entry, derived, config)
    prepared = model.prepare(frame)
    rng = np.random.default_rng(seed)
    arms, periods = prepared.coords["arm"], prepared.coords["period"]
    subjects = prepared.subject_data["subject"].values
    shape = (1, draws)
    n_sub, n_arm = len(subjects), len(arms)
    post = xr.Dataset(
        {
            "log_rr": (("chain", "draw", "arm"), rng.normal(log_rr, 0.1, (*shape, n_arm))),
            "sigma_d": (("chain", "draw", "arm"), np.full((*shape, n_arm), sigma_d)),
            "a": (("chain", "draw", "subject"), np.full((*shape, n_sub), np.log(rate))),
            "d": (("chain", "draw", "subject", "arm"), np.zeros((*shape, n_sub, n_arm))),
            "period_effect": (("chain", "draw", "period"), np.zeros((*shape, len(periods)))),
            "k": (("chain", "draw"), np.full(shape, k)),
        },
        coords={"chain": [0], "draw": np.arange(draws), "arm": arms, "subject": subjects,
                "period": periods},
    )
    idata = xr.DataTree.from_dict({"posterior": post, "constant_data": prepared.subject_data})
    return {"crossover": FitRecord(entry, model, idata, frame, prepared)}


#: An intensity primary endpoint with criteria on the difference in mean intensity.
INTENSITY_PLAN = {
    "endpoint": "intensity",
    "summary_measure": "difference_in_mean_intensity",
    "success": {"criteria": [{"difference": 0, "probability": 0.975},
                             {"difference": -1, "probability": 0.5}]},
}  # fmt: skip


def hand_built_intensity(beta_means, n_per_arm=30, draws=4000, seed=3):
    """An ``intensity`` fit with posterior draws placed by hand (no sampling).

    Control logit mean ``Normal(-0.4, 0.05)``, run-in slope 0 (so each arm's standardised
    difference has a closed form), ``beta ~ Normal(beta_means[arm], 0.2)``; ``n_per_arm``
    subjects on placebo and on each arm. Returns the fit and the number of subjects.
    """
    rng = np.random.default_rng(seed)
    arms = ["placebo", *beta_means]
    post = xr.Dataset(
        {
            "alpha": (("chain", "draw"), rng.normal(-0.4, 0.05, (1, draws))),
            "b": (("chain", "draw"), np.zeros((1, draws))),
            "beta": (("chain", "draw", "arm"),
                     rng.normal(list(beta_means.values()), 0.2, (1, draws, len(beta_means)))),
        },
        coords={"chain": [0], "draw": np.arange(draws), "arm": list(beta_means)},
    )  # fmt: skip
    n = n_per_arm * len(arms)
    from crampstats.engine import ATTR_PREFIX

    post.attrs[f"{ATTR_PREFIX}constants"] = json.dumps({"n_squeeze": n, "control_arm": "placebo"})
    subjects = xr.Dataset(
        {
            "x_baseline": ("subject", rng.normal(0, 1, n)),
            "arm": ("subject", np.repeat(arms, n_per_arm)),
        }
    )
    return xr.DataTree.from_dict({"posterior": post, "constant_data": subjects}), n
