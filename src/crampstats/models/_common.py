"""Data preparation shared by the count models: arm coding, centring, subject-level terms.

The designs here are NumPy / pandas only, so the frequentist twins and the Bayesian models turn
the same ``DataFrame`` into the same design, term for term: arm coding, the centred run-in rate,
subject covariates (:class:`CovariateDesign`) and random-intercept groupings such as the site
(:class:`GroupDesign`), with the declared handling of missing covariate values
(:func:`drop_incomplete`). :class:`SubjectTermsModel`, the base class of the count models, adds
the random intercepts to a PyMC graph (PyMC imported only when a model is built) and keeps the
config and id of a model without these terms what they were before the terms existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from crampstats.engine import CountModel, PreparedData
from crampstats.errors import CrampstatsError
from crampstats.numerics import centre_covariate

# Re-exported: the count and endpoint models import them from here; their home is numerics.
from crampstats.numerics import interval_bounds as interval_bounds
from crampstats.numerics import nb_logpmf as nb_logpmf

#: Prior mean of the control arm's log daily rate: docs/calibration.md, "baseline rate, NLC" row
#: (0.6-1.2 cramps a day, 0.9/day in the example trial).
LOG_RATE_PRIOR_MU = float(np.log(0.9))

#: How missing values of a covariate or grouping column are handled (config
#: ``covariate_missing``): refuse them (naming the subjects), drop those subjects, or code them
#: as missing (a 0/1 indicator beside a numeric covariate set to its mean, a level of its own
#: for a categorical one or a grouping).
COVARIATE_MISSING = ("error", "drop", "indicator")
#: Label of the missing level of a categorical covariate or grouping (``indicator``).
MISSING_LEVEL = "(missing)"

#: Model-config entries of the subject-level terms that later releases added, with their
#: neutral values. While a model keeps these values they are left out of its id
#: (:meth:`SubjectTermsModel.id`), so a fit without them keeps the id it always had.
SUBJECT_TERM_DEFAULTS: dict[str, Any] = {
    "random_intercepts": [],
    "covariate_missing": "error",
    # between-group SD of the log rate (e.g. sites): HalfNormal(0.5), median 0.34, 95 % below
    # 0.98 (docs/models.md, "Subject covariates and random intercepts")
    "prior_sigma_group_sd": 0.5,
    # non-centred random intercepts (SubjectTermsModel.group_intercepts measures both forms)
    "centred_groups": False,
}

#: Model-config entries every count model shares: structure (arms, covariates, random
#: intercepts, missing run-in rate and covariate values, period analysed) and the priors of the
#: terms they have in common (docstring of :mod:`crampstats.models.nb_totals` cites their
#: sources). Models add their own entries.
COMMON_MODEL_CONFIG: dict[str, Any] = {
    "control_arm": "placebo",
    "arms": None,
    "covariates": [],
    "missing_baseline": "error",
    "period": "treatment",
    "prior_alpha_mu": LOG_RATE_PRIOR_MU,
    "prior_alpha_sd": 1.0,
    "prior_log_rr_sd": 1.0,
    "prior_b_mu": 0.0,
    "prior_b_sd": 1.0,
    "prior_beta_sd": 1.0,
    **SUBJECT_TERM_DEFAULTS,
}


class ModelDataError(CrampstatsError):
    """The analysis data cannot be fitted by the requested model (message says why and where)."""


@dataclass(frozen=True)
class ArmCoding:
    """Arm labels in model order: the control arm first, then the active arms.

    Attributes
    ----------
    control : str
        Label of the control arm (intercept).
    active : tuple of str
        Labels of the other arms, one log rate ratio each.
    """

    control: str
    active: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        """All arms, control first."""
        return (self.control, *self.active)

    def index(self, arms: pd.Series) -> np.ndarray:
        """Map arm labels to integer codes (control 0, active arms 1..); unknown arms raise."""
        lookup = {arm: i for i, arm in enumerate(self.all)}
        unknown = sorted(set(arms.astype(str)) - set(lookup))
        if unknown:
            raise ModelDataError(
                f"arm(s) {unknown} are not among the model's arms {list(self.all)}; "
                "list every arm in the model config `arms` or refit"
            )
        return arms.astype(str).map(lookup).to_numpy(dtype=np.int64)


def arm_coding(arms: pd.Series, control_arm: str, arm_order: Sequence[str] | None) -> ArmCoding:
    """Decide the arm coding from the data and the config.

    Parameters
    ----------
    arms
        The ``arm`` column of the analysis data.
    control_arm
        Label of the control arm (config ``control_arm``).
    arm_order
        Config ``arms``: all arms of the design in the order wanted in tables. When ``None`` the
        arms present in the data are used, sorted, control first.

    Returns
    -------
    ArmCoding
        Control arm and active arms.

    Raises
    ------
    ModelDataError
        If the control arm is neither in the data nor in ``arm_order``.
    """
    present = sorted(set(arms.astype(str)))
    listed = list(arm_order) if arm_order is not None else present
    if control_arm not in listed:
        raise ModelDataError(
            f"control arm {control_arm!r} not found (arms: {listed}); "
            "set `control_arm` in the model config"
        )
    return ArmCoding(control_arm, tuple(a for a in listed if a != control_arm))


@dataclass
class CovariateDesign:
    """How optional subject covariates enter the linear predictor.

    Numeric columns are centred and divided by their standard deviation (priors are per SD);
    text / categorical columns become 0/1 indicators with the first level (sorted) as reference.
    With ``missing="indicator"`` a numeric column with missing values is set to its mean there
    (0 after centring) and gets a 0/1 column ``name[missing]``; a categorical one gets the level
    :data:`MISSING_LEVEL`, placed last so that the reference stays an observed level.

    Attributes
    ----------
    columns : tuple of str
        Names of the design columns (``age``, ``sex[M]``, ...); part of the model structure.
    spec : dict
        Per source column: ``("numeric", mean, sd)`` (``("numeric", mean, sd, "indicator")``
        with a missing-value indicator) or ``("categorical", levels)``.
    """

    columns: tuple[str, ...] = ()
    spec: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, covariates: Sequence[str], missing: str = "error"
    ) -> CovariateDesign:
        """Learn centring, scaling and levels from ``frame``.

        Parameters
        ----------
        frame
            One row per subject (or rows whose covariates are constant within subject).
        covariates
            Source column names.
        missing
            ``"error"`` or ``"drop"``: missing values are refused, naming the subjects
            (``"drop"`` removes those subjects first, :func:`drop_incomplete`);
            ``"indicator"``: coded as described in the class docstring.

        Raises
        ------
        ModelDataError
            If a column is absent, or holds missing values and ``missing`` is not
            ``"indicator"``.
        """
        columns: list[str] = []
        spec: dict[str, Any] = {}
        for name in covariates:
            if name not in frame.columns:
                raise ModelDataError(f"covariate column {name!r} is not in the analysis data")
            col = frame[name]
            absent = col.isna().to_numpy(dtype=bool)
            if absent.any() and missing != "indicator":
                raise ModelDataError(missing_message("covariate", name, frame, absent))
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                values = as_float(col)
                if absent.any():
                    observed = values[~absent]
                    sd = float(observed.std()) or 1.0
                    spec[name] = ("numeric", float(observed.mean()), sd, "indicator")
                    columns.extend([name, f"{name}[missing]"])
                else:
                    sd = float(values.std()) or 1.0
                    spec[name] = ("numeric", float(values.mean()), sd)
                    columns.append(name)
            else:
                levels = sorted(set(col[~absent].astype(str)))
                if absent.any():
                    levels.append(MISSING_LEVEL)
                spec[name] = ("categorical", levels)
                columns.extend(f"{name}[{lev}]" for lev in levels[1:])
        return cls(tuple(columns), spec)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the ``(n, len(columns))`` design matrix of ``frame``."""
        blocks: list[np.ndarray] = []
        for name, rule in self.spec.items():
            col = frame[name]
            if rule[0] == "numeric":
                values = as_float(col)
                if len(rule) > 3:  # missing-value indicator
                    absent = np.isnan(values)
                    z = np.where(absent, 0.0, (values - rule[1]) / rule[2])
                    blocks.append(np.column_stack([z, absent.astype(float)]))
                else:
                    blocks.append(((values - rule[1]) / rule[2])[:, None])
            else:
                text = _category_text(col)
                blocks.append(np.column_stack([text == lev for lev in rule[1][1:]]).astype(float))
        if not blocks:
            return np.zeros((len(frame), 0))
        return np.column_stack(blocks).reshape(len(frame), -1)


def _category_text(col: pd.Series) -> np.ndarray:
    """Values of a categorical column as text, :data:`MISSING_LEVEL` where missing."""
    absent = col.isna().to_numpy(dtype=bool)
    if not absent.any():
        return col.astype(str).to_numpy()
    text = col.astype(object).astype(str).to_numpy(dtype=object)
    text[absent] = MISSING_LEVEL
    return text.astype(str)


def missing_message(kind: str, name: str, frame: pd.DataFrame, absent: np.ndarray) -> str:
    """Refusal of missing covariate / grouping values, naming the subjects (up to 10)."""
    subjects = list(dict.fromkeys(subject_keys(frame.loc[absent]).tolist()))
    shown = ", ".join(subjects[:10]) + (f" and {len(subjects) - 10} more" if len(subjects) > 10
                                        else "")
    return (
        f"{kind} {name!r} is missing for {len(subjects)} subject(s): {shown}; supply the "
        "values, or set analysis.covariate_missing to 'drop' (leave those subjects out) or "
        "'indicator' (code the values as missing)"
    )


def group_label(value: Any) -> str:
    """Text label of a grouping value: ``3.0`` (a numerically coded site) reads ``3``."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass
class GroupDesign:
    """Random-intercept groupings (e.g. ``site``): the levels of each grouping column.

    Every grouping is categorical whatever its dtype (a numerically coded site ``3`` is the
    level ``"3"``). When the data hold several trials (``trial_id`` with more than one value)
    levels are nested in their trial (``"trial_a/3"``): sites of different trials are
    different sites. With ``missing="indicator"`` missing values form the level
    :data:`MISSING_LEVEL`.

    Attributes
    ----------
    columns : tuple of str
        Grouping columns, in config order (coordinate ``group``).
    levels : dict
        Grouping column -> its level labels, sorted.
    nested : bool
        Levels are prefixed by the trial.
    """

    columns: tuple[str, ...] = ()
    levels: dict[str, list[str]] = field(default_factory=dict)
    nested: bool = False

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, columns: Sequence[str], missing: str = "error"
    ) -> GroupDesign:
        """Learn the levels of each grouping column from ``frame`` (refusals as covariates)."""
        nested = "trial_id" in frame.columns and frame["trial_id"].nunique(dropna=True) > 1
        levels: dict[str, list[str]] = {}
        for name in columns:
            if name not in frame.columns:
                raise ModelDataError(f"grouping column {name!r} is not in the analysis data")
            absent = frame[name].isna().to_numpy(dtype=bool)
            if absent.any() and missing != "indicator":
                raise ModelDataError(missing_message("grouping", name, frame, absent))
            levels[name] = sorted(set(cls._labels(frame, name, nested)))
        return cls(tuple(columns), levels, nested)

    @staticmethod
    def _labels(frame: pd.DataFrame, name: str, nested: bool) -> list[str]:
        labels = [MISSING_LEVEL if pd.isna(v) else group_label(v) for v in frame[name]]
        if nested:
            trials = frame["trial_id"].astype(str).tolist()
            labels = [f"{t}/{lab}" for t, lab in zip(trials, labels, strict=True)]
        return labels

    @property
    def labels(self) -> list[str]:
        """Every level of every grouping, ``"site[A]"``, grouping by grouping (``group_level``)."""
        return [f"{name}[{lev}]" for name in self.columns for lev in self.levels[name]]

    @property
    def level_group(self) -> np.ndarray:
        """Position of each level's grouping in :attr:`columns`, shape ``(n_levels,)``."""
        return np.repeat(np.arange(len(self.columns)), [len(self.levels[c]) for c in self.columns])

    def index(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's level of each grouping, as a position in :attr:`labels`: ``(n, n_groups)``.

        Raises
        ------
        ModelDataError
            If a row holds a level not learned (new data for a compiled model).
        """
        out = np.zeros((len(frame), len(self.columns)), dtype=np.int64)
        offset = 0
        for j, name in enumerate(self.columns):
            lookup = {lev: offset + i for i, lev in enumerate(self.levels[name])}
            labels = self._labels(frame, name, self.nested)
            unknown = sorted(set(labels) - set(lookup))
            if unknown:
                raise ModelDataError(
                    f"grouping {name!r}: level(s) {unknown[:5]} are not among the model's levels"
                )
            out[:, j] = [lookup[lab] for lab in labels]
            offset += len(self.levels[name])
        return out


def drop_incomplete(
    frame: pd.DataFrame, columns: Sequence[str], missing: str
) -> tuple[pd.DataFrame, int]:
    """Leave out the subjects with a missing covariate or grouping value (``missing="drop"``).

    Parameters
    ----------
    frame
        Analysis rows (one or more per subject).
    columns
        Covariate and grouping columns of the model.
    missing
        Config ``covariate_missing``; anything but ``"drop"`` returns ``frame`` unchanged
        (the designs refuse or code the missing values).

    Returns
    -------
    frame : pandas.DataFrame
        The rows of subjects with every value present.
    n_dropped : int
        Subjects left out.
    """
    if missing not in COVARIATE_MISSING:
        raise ValueError(f"covariate_missing must be one of {COVARIATE_MISSING}, got {missing!r}")
    if missing != "drop" or not columns:
        return frame, 0
    require_columns(frame, columns, "analysis data (covariates and groupings)")
    absent = frame[list(columns)].isna().any(axis=1).to_numpy(dtype=bool)
    if not absent.any():
        return frame, 0
    keys = subject_keys(frame)
    dropped = set(keys[absent])
    keep = ~keys.isin(dropped).to_numpy(dtype=bool)
    return frame.loc[keep], len(dropped)


@dataclass
class SubjectTerms:
    """A model's subject-level terms: covariates (fixed) and groupings (random intercepts).

    Attributes
    ----------
    covariates : CovariateDesign
        The covariate design (``X_cov``, coordinate ``covariate``).
    groups : GroupDesign
        The random-intercept groupings (``group_idx``, coordinates ``group``, ``group_level``).
    n_dropped : int
        Subjects left out for missing values (``covariate_missing="drop"``).
    missing : str
        The config ``covariate_missing``.
    """

    covariates: CovariateDesign
    groups: GroupDesign
    n_dropped: int = 0
    missing: str = "error"

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, config: Mapping[str, Any], n_dropped: int = 0
    ) -> SubjectTerms:
        """Learn both designs from ``frame`` (one row per subject) and the model config."""
        missing = str(config.get("covariate_missing", "error"))
        return cls(
            CovariateDesign.from_frame(frame, config["covariates"], missing),
            GroupDesign.from_frame(frame, config.get("random_intercepts") or [], missing),
            n_dropped,
            missing,
        )

    def arrays(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """``X_cov`` and ``group_idx`` of ``frame`` (one row per unit), those the model has."""
        out: dict[str, np.ndarray] = {}
        if self.covariates.columns:
            out["X_cov"] = self.covariates.matrix(frame)
        if self.groups.columns:
            out["group_idx"] = self.groups.index(frame)
        return out

    def coords(self) -> dict[str, list[str]]:
        """Structural coordinates: ``covariate`` always; ``group``, ``group_level`` if any."""
        out = {"covariate": list(self.covariates.columns)}
        if self.groups.columns:
            out["group"] = list(self.groups.columns)
            out["group_level"] = self.groups.labels
        return out

    def constants(self) -> dict[str, Any]:
        """Constants recorded with the fit: subjects dropped for missing values (``drop``)."""
        return {"n_covariate_dropped": self.n_dropped} if self.missing == "drop" else {}

    def add_to(self, subject_data: xr.Dataset, arrays: Mapping[str, np.ndarray]) -> xr.Dataset:
        """Store ``X_cov`` and ``group_idx`` (per subject) in the fit's ``constant_data``."""
        if "X_cov" in arrays:
            subject_data["X_cov"] = (("subject", "covariate"), arrays["X_cov"])
            subject_data = subject_data.assign_coords(covariate=list(self.covariates.columns))
        if "group_idx" in arrays:
            subject_data["group_idx"] = (("subject", "group"), arrays["group_idx"])
            subject_data = subject_data.assign_coords(group=list(self.groups.columns))
        return subject_data


def group_term(post: xr.Dataset | xr.DataTree, group_idx: np.ndarray) -> np.ndarray:
    """Sum of the random intercepts of each unit, per draw: ``(chain, draw, n)``.

    Parameters
    ----------
    post
        Posterior with ``group_effect`` (dim ``group_level``).
    group_idx
        ``(n, n_groups)`` level positions (:meth:`GroupDesign.index`).
    """
    effect = post["group_effect"].transpose("chain", "draw", "group_level").values
    return effect[..., np.asarray(group_idx, dtype=np.int64)].sum(axis=-1)


def subject_group_term(idata: xr.DataTree, subject_data: xr.Dataset) -> xr.DataArray | float:
    """:func:`group_term` of each subject of ``subject_data`` (0 without groupings)."""
    if "group_idx" not in subject_data:
        return 0.0
    group_idx = subject_data["group_idx"].transpose("subject", "group").values
    return xr.DataArray(
        group_term(idata["posterior"], group_idx),
        dims=("chain", "draw", "subject"),
        coords={"subject": subject_data["subject"]},
    )


def twin_columns(
    X_cov: np.ndarray | None, group_idx: np.ndarray | None, groups: Mapping[str, Any]
) -> tuple[list[np.ndarray], list[str]]:
    """Return the twins' columns for the covariates and the groupings, with their names.

    Covariates enter as in the Bayesian model; every grouping enters as fixed effects, one
    0/1 column per level after the first of that grouping (the random intercepts' frequentist
    counterpart).

    Parameters
    ----------
    X_cov
        Covariate design of the rows (or ``None``).
    group_idx
        Level positions of the rows (or ``None``).
    groups
        The prepared coords (``covariate``, ``group``, ``group_level``).

    Returns
    -------
    blocks : list of numpy.ndarray
        Column blocks to append to the twin's design.
    names : list of str
        One name per column: the covariate names, then ``site[B]``, ...
    """
    blocks: list[np.ndarray] = []
    names: list[str] = []
    if X_cov is not None and X_cov.shape[1]:
        blocks.append(X_cov)
        names.extend(groups["covariate"])
    if group_idx is not None and group_idx.shape[1]:
        labels = list(groups["group_level"])
        level_group = _level_group(groups)
        first = {int(np.flatnonzero(level_group == j)[0]) for j in range(group_idx.shape[1])}
        keep = [i for i in range(len(labels)) if i not in first]
        member = np.zeros((group_idx.shape[0], len(labels)))
        for j in range(group_idx.shape[1]):
            member[np.arange(group_idx.shape[0]), group_idx[:, j]] = 1.0
        blocks.append(member[:, keep])
        names.extend(labels[i] for i in keep)
    return blocks, names


def _level_group(coords: Mapping[str, Any]) -> np.ndarray:
    """Position of each ``group_level`` label's grouping in ``coords["group"]``."""
    groups = list(coords["group"])
    out = np.empty(len(coords["group_level"]), dtype=np.int64)
    for i, label in enumerate(coords["group_level"]):
        out[i] = next(j for j, g in enumerate(groups) if str(label).startswith(f"{g}["))
    return out


def twin_coefficients(
    covariates: Sequence[str], params: np.ndarray, bse: np.ndarray, start: int
) -> dict[str, dict[str, float]]:
    """Return the twin's covariate coefficients, its counterpart of the Bayesian ``beta``.

    Parameters
    ----------
    covariates
        Names of the covariate columns (coordinate ``covariate``).
    params, bse
        The twin's estimates and standard errors.
    start
        Position of the first covariate column (:func:`twin_columns` puts them first).

    Returns
    -------
    dict
        ``{"beta": {name: estimate}, "beta_se": {name: standard error}}``.
    """
    names = list(covariates)
    return {
        "beta": {n: float(params[start + i]) for i, n in enumerate(names)},
        "beta_se": {n: float(bse[start + i]) for i, n in enumerate(names)},
    }


def without_neutral_terms(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a model config without the subject-term settings that hold neutral values.

    ``covariate_missing`` goes while it is ``"error"``; without random intercepts,
    ``random_intercepts``, ``prior_sigma_group_sd`` and ``centred_groups`` go while at their
    defaults (with random intercepts they stay, and enter the model id).
    """
    cfg = dict(config)
    if cfg.get("covariate_missing") == SUBJECT_TERM_DEFAULTS["covariate_missing"]:
        cfg.pop("covariate_missing")
    if not cfg.get("random_intercepts"):
        cfg.pop("random_intercepts", None)
        for key in ("prior_sigma_group_sd", "centred_groups"):
            if key in cfg and cfg[key] == SUBJECT_TERM_DEFAULTS[key]:
                cfg.pop(key)
    return cfg


class SubjectTermsModel(CountModel):
    """A count model with the shared subject-level terms (covariates, random intercepts).

    Adds to :class:`~crampstats.engine.CountModel`: checks of the subject-term settings, the
    random intercepts of a PyMC graph (:meth:`group_intercepts`) and :meth:`setting`. The
    settings of :data:`SUBJECT_TERM_DEFAULTS` are left out of :attr:`model_config` while they
    hold their neutral values (:func:`without_neutral_terms`), so that a model without those
    terms has the config, id and recorded settings (and tables naming them) it had before
    they existed.
    """

    def __init__(
        self,
        model_config: Mapping[str, Any] | None = None,
        sampler_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(model_config, sampler_config)
        self.model_config = without_neutral_terms(self.model_config)
        missing = self.setting("covariate_missing")
        if missing not in COVARIATE_MISSING:
            raise ValueError(
                f"covariate_missing must be one of {COVARIATE_MISSING}, got {missing!r}"
            )
        both = sorted(set(self.model_config["covariates"]) & set(self.groupings()))
        if both:
            raise ValueError(
                f"{both} named both as covariate(s) and as random intercept(s); choose one"
            )

    def setting(self, key: str) -> Any:
        """Return a model-config entry, or its neutral value (:data:`SUBJECT_TERM_DEFAULTS`)."""
        return self.model_config.get(key, SUBJECT_TERM_DEFAULTS.get(key))

    def groupings(self) -> list[str]:
        """Random-intercept grouping columns (config ``random_intercepts``)."""
        return list(self.setting("random_intercepts") or [])

    def subject_columns(self) -> list[str]:
        """Covariate and grouping columns the model reads (per subject)."""
        return [*self.model_config["covariates"], *self.groupings()]

    def group_intercepts(self, prepared: PreparedData) -> Any:
        """Add the random intercepts to the model being built; return each unit's sum of them.

        Call inside ``with pm.Model(coords=...)`` (coords including ``group`` and
        ``group_level``). ``sigma_group ~ HalfNormal(prior_sigma_group_sd)`` per grouping and,
        by default, non-centred effects: ``group_effect = sigma_group[g] * group_raw`` with
        ``group_raw ~ Normal(0, 1)`` per level. With ``centred_groups`` the effects are
        sampled directly, ``group_effect ~ Normal(0, sigma_group[g])``. Measured on 12 sites of
        ~20 subjects (nb_totals, 2 x 500 draws, two data sets), where each site's data pin its
        effect (SE ~0.13) more tightly than ``sigma_group`` (0.4) does, the centred form mixed
        better: minimum bulk ESS of ``sigma_group`` 819-867 against 190-205, of the site
        effects 332-401 against 159-316, of ``alpha`` 230-260 against 144-196; ``log_rr`` and
        ``beta`` alike (436-567). With few subjects per site the non-centred form is the
        safe one (docs/design.md), hence the default. Returns ``0.0`` without groupings.
        """
        if "group_level" not in prepared.coords:
            return 0.0
        import pymc as pm

        group_idx = pm.Data("group_idx", prepared.data["group_idx"])
        sigma = pm.HalfNormal("sigma_group", self.setting("prior_sigma_group_sd"), dims="group")
        level_sd = sigma[_level_group(prepared.coords)]
        if self.setting("centred_groups"):
            effect = pm.Normal("group_effect", 0.0, level_sd, dims="group_level")
        else:
            raw = pm.Normal("group_raw", 0.0, 1.0, dims="group_level")
            effect = pm.Deterministic("group_effect", level_sd * raw, dims="group_level")
        return effect[group_idx].sum(axis=1)


def as_float(values: pd.Series) -> np.ndarray:
    """Return a float array from any numeric pandas dtype; NA (also nullable ``Float64``) -> NaN."""
    return values.to_numpy(dtype=float, na_value=np.nan)


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise :class:`ModelDataError` naming the columns of ``frame`` that are missing."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ModelDataError(f"{what} lacks column(s) {missing}")


def drop_zero_exposure(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop rows with ``exposure_days == 0`` (nothing observed); negative exposure raises."""
    exposure = as_float(frame["exposure_days"])
    if np.any(exposure < 0) or np.any(np.isnan(exposure)):
        raise ModelDataError("exposure_days must be >= 0 and not missing")
    return frame.loc[exposure > 0].reset_index(drop=True)


def check_counts(frame: pd.DataFrame) -> np.ndarray:
    """Return the ``count`` column as int64, refusing missing, negative or fractional counts."""
    values = as_float(frame["count"])
    bad = np.isnan(values) | (values < 0) | (values != np.round(values))
    if bad.any():
        raise ModelDataError(
            f"count must be an integer >= 0; {int(bad.sum())} row(s) break this "
            f"(first rows {list(np.flatnonzero(bad)[:5])})"
        )
    return values.astype(np.int64)


def baseline_covariate(
    frame: pd.DataFrame, missing: str = "error"
) -> tuple[np.ndarray, float, int]:
    """Return the centred ``log_baseline_rate``, its centre and the number of values imputed.

    Parameters
    ----------
    frame
        One row per subject.
    missing
        ``"error"`` (default): refuse missing values (a subject without run-in days).
        ``"mean"``: set them to the mean of the others (0 after centring). In a randomised trial
        mean imputation of a baseline covariate leaves the treatment effect unbiased (White &
        Thompson 2005, Stat Med 24:993); the number imputed is recorded in the fit.

    Returns
    -------
    x_centred : numpy.ndarray
        ``log_baseline_rate - mean`` (mean over the non-missing values).
    centre : float
        The mean.
    n_imputed : int
        How many values were imputed.
    """
    values = as_float(frame["log_baseline_rate"])
    bad = ~np.isfinite(values)
    if bad.any() and missing != "mean":
        raise ModelDataError(
            f"log_baseline_rate is missing or infinite for {int(bad.sum())} subject(s) "
            f"(e.g. {list(frame['subject_id'].astype(str)[bad][:5])}); the models adjust for the "
            "run-in rate: supply it, or set model config missing_baseline='mean'"
        )
    if missing not in ("error", "mean"):
        raise ValueError(f"missing_baseline must be 'error' or 'mean', got {missing!r}")
    return centre_covariate(values, bad)


def subject_keys(frame: pd.DataFrame) -> pd.Series:
    """One string key per row identifying the subject across trials (``trial_id/subject_id``)."""
    if "trial_id" in frame.columns:
        return frame["trial_id"].astype(str) + "/" + frame["subject_id"].astype(str)
    return frame["subject_id"].astype(str)


def arm_effect(log_rr: xr.DataArray, arm_idx: np.ndarray, subject_data: xr.Dataset) -> xr.DataArray:
    """Per-subject arm log rate ratio (0 for control) from the posterior ``log_rr``."""
    values = log_rr.transpose("chain", "draw", "arm").values
    full = np.concatenate([np.zeros((*values.shape[:2], 1)), values], axis=-1)
    return xr.DataArray(
        full[..., arm_idx],
        dims=("chain", "draw", "subject"),
        coords={
            "chain": log_rr["chain"],
            "draw": log_rr["draw"],
            "subject": subject_data["subject"],
        },
    )


def nb_pmf_table(mu: np.ndarray, k: np.ndarray | float, max_count: int) -> np.ndarray:
    """Posterior-averaged NB2 pmf of every unit at counts ``0 .. max_count``.

    Parameters
    ----------
    mu
        Means, shape ``(chain, draw, unit)``.
    k
        Size (broadcasting against ``mu``, e.g. ``(chain, draw, 1)``).
    max_count
        Largest count tabulated; the last column holds ``P(y >= max_count)``.

    Returns
    -------
    numpy.ndarray
        ``(unit, max_count + 1)``, rows summing to 1.
    """
    k = np.broadcast_to(k, mu.shape)
    p = k / (k + mu)
    counts = np.arange(max_count)
    out = np.empty((mu.shape[-1], max_count + 1))
    for c in counts:
        out[:, c] = stats.nbinom.pmf(c, k, p).mean(axis=(0, 1))
    out[:, max_count] = stats.nbinom.sf(max_count - 1, k, p).mean(axis=(0, 1))
    return out
