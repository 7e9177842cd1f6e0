"""Numbers and sentences of the report: formatting, the summary sentences, the methods text.

Pure functions returning plain ``str`` (never markup): the templates escape every one of them,
so a data-derived string (an arm name, a model setting) can never become HTML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Dash shown for a missing number.
MISSING = "\u2013"  # en dash


def is_missing(x: Any) -> bool:
    """Return True for ``None``, NaN and pandas' NA."""
    if x is None:
        return True
    try:
        return bool(x != x)  # NaN and pd.NA (pd.NA != pd.NA is NA, which bool() refuses)
    except TypeError:
        return True


def num(x: Any, digits: int = 2) -> str:
    """Format a number with ``digits`` decimals (a dash when missing)."""
    if is_missing(x):
        return MISSING
    return f"{float(x):.{digits}f}"


def integer(x: Any) -> str:
    """Format a count with thousands separators (a dash when missing)."""
    if is_missing(x):
        return MISSING
    return f"{round(float(x)):,}"


def prob(p: Any) -> str:
    """Format a posterior probability with two decimals, ``> 0.99`` / ``< 0.01`` at the ends.

    Draw-based probabilities of exactly 0 or 1 only mean "beyond what the draws resolve", so the
    ends are written as inequalities rather than as certainties.
    """
    if is_missing(p):
        return MISSING
    p = float(p)
    if p >= 0.995:
        return "> 0.99"
    if p <= 0.005:
        return "< 0.01"
    return f"{p:.2f}"


def percent_level(level: float) -> str:
    """Return an interval level as a percentage, e.g. ``0.95`` -> ``95 %``."""
    return f"{100 * float(level):g} %"


def label(name: Any, capital: bool = False) -> str:
    """Return an arm or model id for prose: underscores as spaces, optionally capitalised."""
    text = str(name).replace("_", " ")
    return text[:1].upper() + text[1:] if capital else text


def change(rr: float) -> tuple[int, str]:
    """Return the rounded percent change of a rate ratio and its direction.

    Returns
    -------
    tuple
        ``(percent, direction)`` with ``percent >= 0`` and direction ``"reduction"``,
        ``"increase"`` or ``"no change"`` (when it rounds to 0 %).
    """
    reduction = round(100 * (1 - float(rr)))
    if reduction > 0:
        return reduction, "reduction"
    increase = round(100 * (float(rr) - 1))
    if increase > 0:
        return increase, "increase"
    return 0, "no change"


def _bounds(first: float, second: float, headline: str) -> str:
    """Two interval bounds in the headline's terms, spelled out when either points elsewhere."""
    parts = [change(first), change(second)]
    if all(direction == headline for _, direction in parts):
        return f"{parts[0][0]} % to {parts[1][0]} %"
    words = [d if d == "no change" else f"{p} % {d}" for p, d in parts]
    return f"{words[0]} to {words[1]}"


def threshold_phrase(threshold: float) -> str:
    """Describe P(RR < threshold) in words, e.g. ``a reduction of at least 25 %``."""
    threshold = float(threshold)
    if threshold < 1:
        return f"a reduction of at least {100 * (1 - threshold):g} %"
    return f"a rate ratio below {threshold:g}"


def summary_sentence(row: Mapping[str, Any], control: str, level: float, threshold: float) -> str:
    """One plain sentence stating an arm's primary result.

    Example: ``Mexiletine reduced cramp frequency by 42 % versus placebo (95 % CrI 31 % to
    52 %); probability of any reduction > 0.99, of a reduction of at least 25 % 0.99.``

    Parameters
    ----------
    row
        A row of ``effects.csv`` (``arm, rr_median, rr_lower, rr_upper, p_rr_below_1,
        p_rr_below_threshold``).
    control
        The comparator arm.
    level, threshold
        Interval level and the rate ratio defining a meaningful reduction (config ``analysis``).

    Returns
    -------
    str
        The sentence (plain text).
    """
    arm = label(row["arm"], capital=True)
    versus = label(control)
    if any(is_missing(row.get(k)) for k in ("rr_median", "rr_lower", "rr_upper")):
        return f"{arm}: no estimate of the rate ratio versus {versus} is available."
    pct, direction = change(row["rr_median"])
    if direction == "reduction":
        head = f"{arm} reduced cramp frequency by {pct} % versus {versus}"
    elif direction == "increase":
        head = f"{arm} increased cramp frequency by {pct} % versus {versus}"
    else:
        head = (
            f"{arm} left cramp frequency unchanged versus {versus}, "
            f"rate ratio {num(row['rr_median'])}"
        )
    if direction == "increase":
        bounds = _bounds(row["rr_lower"], row["rr_upper"], direction)
    else:
        # reductions: the smallest reduction comes from the upper rate-ratio bound
        bounds = _bounds(row["rr_upper"], row["rr_lower"], direction)
    interval = f"{percent_level(level)} CrI {bounds}"
    return (
        f"{head} ({interval}); probability of any reduction {prob(row['p_rr_below_1'])}, "
        f"of {threshold_phrase(threshold)} {prob(row['p_rr_below_threshold'])}."
    )


def interval(lower: Any, upper: Any, digits: int = 2) -> str:
    """Format an interval ``lower to upper``."""
    return f"{num(lower, digits)} to {num(upper, digits)}"


# ---------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------
#: What each catalogue model is, in a sentence or two a reviewer can paste (the model modules'
#: docstrings and design.md's catalogue are the sources; the priors come from the fit).
MODEL_TEXT = {
    "nb_totals": (
        "Each subject's total number of cramps over the treatment period was modelled as "
        "negative binomial (NB2, variance mu + mu^2/k) with mean equal to the number of "
        "diarised treatment days times exp(alpha + log RR[arm] + b (x - mean x) + beta'z), "
        "where alpha is the control arm's log daily cramp rate, log RR the log rate ratio of "
        "each active arm versus control, x the subject's log run-in cramp rate and z optional "
        "standardised covariates. Days without a diary entry reduce exposure; they are never "
        "counted as days without cramps."
    ),
    "frailty_weekly": (
        "Weekly treatment-period counts were modelled as Poisson with a gamma-distributed "
        "subject frailty (mean 1, shape phi) integrated out exactly, which gives a negative "
        "multinomial likelihood per subject, with the same arm, run-in and covariate terms as "
        "the primary model plus a linear trend in study week (when enabled). Weeks without any "
        "diarised day carry no information and are omitted."
    ),
    "nb_glmm": (
        "Weekly counts were modelled as negative binomial with log-normal subject random "
        "effects (a generalised linear mixed model), with the arm, run-in and covariate terms "
        "of the primary model."
    ),
    "zinb": (
        "A zero-inflated negative binomial model allowed for excess zeros (subjects who stop "
        "cramping entirely, complete responders) beside the negative binomial counts."
    ),
    "hurdle": (
        "A hurdle model separated whether a subject had any cramp from how many cramps they "
        "had when they had any (zero-truncated negative binomial), to check the primary "
        "model's treatment of zero counts."
    ),
    "crossover": (
        "Cramp counts per subject and numbered treatment period (run-in and washout not "
        "analysed) were modelled as negative binomial with mean equal to the diarised days "
        "times exp(a_i + period effect + (log RR[arm] + d_i[arm]) for active treatment), with "
        "subject intercepts a_i ~ Normal(alpha + b (x_i - mean x) + beta'z_i, sigma_a) "
        "(x_i the log run-in rate) and each patient's own deviation d_i ~ Normal(0, sigma_d) "
        "from the mean log rate ratio log RR; a first-order carry-over term is added when "
        "configured. The patients' own effects are pooled hierarchically, so each patient "
        "has a posterior rate ratio exp(log RR + d_i) and a probability of their own benefit, "
        "P(log RR + d_i < 0)."
    ),
    "multi_trial": (
        "Several trials were analysed together with trial-specific baseline and placebo rates "
        "and therapy effects shared between trials with between-trial heterogeneity, which "
        "also gives indirect comparisons between active therapies."
    ),
}

MODEL_ROLE = {
    "nb_totals": "treatment-period totals",
    "frailty_weekly": "weekly counts with gamma frailty",
    "nb_glmm": "weekly negative binomial mixed model",
    "zinb": "zero-inflated negative binomial",
    "hurdle": "hurdle negative binomial",
    "crossover": "within-subject crossover / N-of-1 model",
    "multi_trial": "several trials together",
}

#: Prior families and meanings of the ``prior_<name>_mu`` / ``prior_<name>_sd`` settings.
PRIORS = {
    "alpha": ("Normal", "control arm's log daily cramp rate at the mean run-in rate"),
    "log_rr": ("Normal", "log rate ratio of each active arm versus control"),
    "b": ("Normal", "slope on the centred log run-in rate"),
    "beta": ("Normal", "coefficient per SD of a numeric covariate or per level of a category"),
    "k": ("LogNormal", "negative binomial size (overdispersion; mu and sd of log k)"),
    "phi": ("LogNormal", "gamma frailty shape (mu and sd of log phi)"),
    "trend": ("Normal", "linear trend per study week"),
    "sigma_a": ("HalfNormal", "between-subject SD of the log rate after the run-in adjustment"),
    "sigma_d": ("HalfNormal", "SD of the patients' own treatment effects around the mean"),
    "period": ("Normal", "period effect (per period after the first, or per period step)"),
    "carryover": ("Normal", "first-order carry-over of an active treatment"),
}


def prior_lines(model_config: Mapping[str, Any]) -> list[str]:
    """Describe the priors of a model config, one line per parameter.

    ``prior_<name>_mu`` and ``prior_<name>_sd`` pairs become ``name ~ Family(mu, sd)``; a
    missing ``mu`` means 0. Unknown prior settings are listed as they are. The covariate prior
    is left out when there are no covariates, the trend prior when ``trend`` is false.
    """
    groups: dict[str, dict[str, Any]] = {}
    for key in sorted(model_config):
        if not key.startswith("prior_"):
            continue
        stem = key.removeprefix("prior_")
        for suffix in ("_mu", "_sd"):
            if stem.endswith(suffix):
                groups.setdefault(stem.removesuffix(suffix), {})[suffix[1:]] = model_config[key]
                break
        else:
            groups.setdefault(stem, {})["value"] = model_config[key]
    # priors of terms the model does not have in this run are left out
    if not model_config.get("covariates", True):
        groups.pop("beta", None)
    if model_config.get("trend", True) is False:
        groups.pop("trend", None)
    if model_config.get("carryover", True) is False:
        groups.pop("carryover", None)
    lines = []
    for name, parts in groups.items():
        family, meaning = PRIORS.get(name, ("", ""))
        if "value" in parts or not family:
            shown = ", ".join(f"{k} = {_value(v)}" for k, v in parts.items())
            lines.append(f"prior {name}: {shown}")
            continue
        mu, sd = parts.get("mu", 0.0), parts.get("sd")
        if family == "HalfNormal":
            lines.append(f"{name} ~ HalfNormal({_value(sd)}): {meaning}")
            continue
        text = f"{name} ~ {family}({_value(mu)}, {_value(sd)})"
        if family == "LogNormal" and not is_missing(mu):
            text += f", i.e. median {math.exp(float(mu)):.3g}"
        elif name == "alpha" and not is_missing(mu):
            text += f", i.e. a median of {math.exp(float(mu)):.3g} cramps a day"
        lines.append(f"{text}: {meaning}")
    return lines


def setting_lines(model_config: Mapping[str, Any]) -> list[str]:
    """Describe a model config's non-prior settings (control arm, arms, covariates, ...)."""
    return [
        f"{key} = {_value(model_config[key])}"
        for key in sorted(model_config)
        if not key.startswith("prior_")
    ]


def _value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "none"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]" if v else "none"
    return str(v)
