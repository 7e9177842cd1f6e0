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
    out = f"{float(x):.{digits}f}"
    # a small negative number rounds to "-0.00": no sign for a value shown as zero
    return out[1:] if out.startswith("-") and not out.strip("-0.") else out


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
    "Reduced" and "increased" are used only when the interval excludes a rate ratio of 1;
    otherwise the sentence claims no direction (:func:`neutral_change`): ``Quinine: cramp
    frequency estimated 6 % lower than with placebo; 95 % CrI from 11 % higher to 21 % lower;
    probability ...``.

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
    probabilities = (
        f"probability of any reduction {prob(row['p_rr_below_1'])}, "
        f"of {threshold_phrase(threshold)} {prob(row['p_rr_below_threshold'])}."
    )
    pct = change(row["rr_median"])[0]
    # a verb claims a direction: only when the interval excludes no change (RR 1)
    if float(row["rr_upper"]) < 1 or float(row["rr_lower"]) > 1:
        verb = "reduced" if float(row["rr_upper"]) < 1 else "increased"
        if verb == "increased":
            bounds = _bounds(row["rr_lower"], row["rr_upper"], "increase")
        else:
            # reductions: the smallest reduction comes from the upper rate-ratio bound
            bounds = _bounds(row["rr_upper"], row["rr_lower"], "reduction")
        return (
            f"{arm} {verb} cramp frequency by {pct} % versus {versus} "
            f"({percent_level(level)} CrI {bounds}); {probabilities}"
        )
    return f"{arm}: {neutral_change(row, versus, level)}; {probabilities}"


def _relative(rr: float) -> str:
    """Return a rate ratio as a relative difference in words: ``6 % lower``, ``11 % higher``."""
    pct, direction = change(rr)
    if direction == "no change":
        return "no change"
    return f"{pct} % {'lower' if direction == 'reduction' else 'higher'}"


def neutral_change(row: Mapping[str, Any], versus: str, level: float) -> str:
    """Describe an estimate whose interval includes no change, claiming no direction.

    Example: ``cramp frequency estimated 6 % lower than with placebo; 95 % CrI from 11 %
    higher to 21 % lower``; the interval runs from the bound on the far side of no change.
    """
    rr = float(row["rr_median"])
    estimate = _relative(rr)
    head = (
        f"cramp frequency estimated {estimate} than with {versus}"
        if estimate != "no change"
        else f"cramp frequency estimated unchanged versus {versus} (rate ratio {num(rr)})"
    )
    first, second = (
        (row["rr_lower"], row["rr_upper"]) if rr > 1 else (row["rr_upper"], row["rr_lower"])
    )
    return (
        f"{head}; {percent_level(level)} CrI from {_relative(first)} to {_relative(second)}"
    )


def interval(lower: Any, upper: Any, digits: int = 2) -> str:
    """Format an interval ``lower to upper``."""
    return f"{num(lower, digits)} to {num(upper, digits)}"


# ---------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------
#: What each catalogue model is, in a sentence or two a reviewer can paste (the model modules'
#: docstrings and docs/design.md's catalogue are the sources; the priors come from the fit).
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

#: Prior families and meanings of the ``prior_<name>_mu`` / ``prior_<name>_sd`` settings of the
#: count models; a third element names the unit of ``exp(mu)``, stated as the prior median.
PRIORS: dict[str, tuple[str, ...]] = {
    "alpha": (
        "Normal",
        "control arm's log daily cramp rate at the mean run-in rate",
        "cramps a day",
    ),
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


def prior_lines(
    model_config: Mapping[str, Any], known: Mapping[str, tuple[str, ...]] | None = None
) -> list[str]:
    """Describe the priors of a model config, one line per parameter.

    ``prior_<name>_mu`` and ``prior_<name>_sd`` pairs become ``name ~ Family(mu, sd)``; a
    missing ``mu`` means 0. Unknown prior settings are listed as they are. The covariate prior
    is left out when there are no covariates, the trend prior when ``trend`` is false.

    Parameters
    ----------
    model_config
        The model config.
    known
        Family, meaning and optionally the unit of ``exp(mu)`` of each prior name (default
        :data:`PRIORS`, the count models'); a model whose parameters mean something else passes
        its own (``{}``: list every prior's settings as they are).
    """
    known = PRIORS if known is None else known
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
        family, meaning, *unit = known.get(name, ("", ""))
        if "value" in parts or not family:
            shown = ", ".join(f"{k} = {_value(v)}" for k, v in parts.items())
            lines.append(f"prior {name}: {shown}" + (f" ({meaning})" if meaning else ""))
            continue
        mu, sd = parts.get("mu", 0.0), parts.get("sd")
        if family == "HalfNormal":
            lines.append(f"{name} ~ HalfNormal({_value(sd)}): {meaning}")
            continue
        text = f"{name} ~ {family}({_value(mu)}, {_value(sd)})"
        if family == "LogNormal" and not is_missing(mu):
            text += f", i.e. median {math.exp(float(mu)):.3g}"
        elif unit and not is_missing(mu):
            text += f", i.e. a median of {math.exp(float(mu)):.3g} {unit[0]}"
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


# ---------------------------------------------------------------------------------------------
# Secondary endpoints
# ---------------------------------------------------------------------------------------------
#: Reader's names of the endpoints of ``effects_secondary.csv`` and ``outcome_measures.csv``.
ENDPOINT_LABEL = {
    "cramp_frequency": "cramp frequency",
    "ctf": "cramp threshold frequency (CTF)",
    "afterdischarge": "after-discharge grade",
    "cramp_potential": "cramp potential frequency",
    "intensity": "cramp intensity",
    "responder": "responders",
    "safety": "adverse events",
    "location": "cramp location",
    "afterdischarge_grade": "after-discharge grade",
    "cramp_frequency_vs_ctf": "cramp frequency and CTF",
}

#: Short names of the endpoints, for table cells and figure labels.
ENDPOINT_SHORT = {
    "cramp_frequency": "cramp frequency",
    "ctf": "CTF",
    "afterdischarge": "after-discharge grade",
    "afterdischarge_grade": "after-discharge grade",
    "cramp_frequency_vs_ctf": "cramp frequency vs CTF",
    "intensity": "intensity",
    "responder": "responders",
    "safety": "adverse events",
}


def endpoint_short(endpoint: Any) -> str:
    """Return the short name of an endpoint id (its reader's name when it has none)."""
    return ENDPOINT_SHORT.get(str(endpoint), endpoint_label(endpoint))


#: Reader's names of the effect measures of ``effects_secondary.csv``.
MEASURE_LABEL = {
    "ratio_of_medians": "ratio of medians",
    "odds_ratio_lower_grade": "odds ratio of a lower grade",
    "difference_in_mean_intensity": "difference in means",
    "risk_difference": "risk difference",
    "risk_ratio": "risk ratio",
}


def endpoint_label(endpoint: Any) -> str:
    """Return the reader's name of an endpoint id (the id itself when unknown)."""
    return ENDPOINT_LABEL.get(str(endpoint), label(endpoint))


def effect_label(endpoint: Any, measure: Any) -> str:
    """Name an endpoint's effect measure for a table cell, e.g. ``CTF: ratio of medians``."""
    name, category = measure_label(measure)
    head = endpoint_short(endpoint)
    return f"{head}: {name}" + (f", {category}" if category else "")


def measure_label(measure: Any) -> tuple[str, str | None]:
    """Split a measure such as ``risk_ratio:cinchonism`` into its reader's name and category.

    Returns
    -------
    tuple
        ``(name, category)``; the category is ``None`` for a measure without one.
    """
    base, sep, category = str(measure).partition(":")
    return MEASURE_LABEL.get(base, label(base)), (category if sep else None)


#: What each secondary model is (docs/models.md, and the output contract of crampstats.secondary);
#: the priors are listed beside it from the model config recorded with the fit.
SECONDARY_MODEL_TEXT = {
    "ctf": (
        "The cramp threshold frequency (CTF: the lowest stimulation frequency that induced a "
        "cramp) at the end of treatment was modelled as log-normal, with the subject's log "
        "baseline CTF as covariate and each active arm's shift of the log median versus "
        "control. The stimulation protocol only brackets the threshold between two frequency "
        "steps, and a subject in whom no cramp was induced up to the maximum frequency is "
        "right-censored there: the likelihood uses these intervals exactly (interval and right "
        "censoring) rather than treating the recorded step as the threshold. Subjects without "
        "an end-of-treatment CTF are not analysed. The effect is the ratio of the arm's median "
        "CTF to control's; above 1 means a higher threshold, muscles that cramp less easily "
        "(benefit)."
    ),
    "afterdischarge": (
        "The after-discharge grade on 1 Hz repetitive nerve stimulation (0 none, 1-3 increasing "
        "after-discharges, 4 a continuous cramp potential; a descriptive scale, not a validated "
        "one) at the end of treatment was modelled with a cumulative-logit (proportional odds) "
        "ordinal model with four ordered cutpoints, the subject's baseline grade as a centred "
        "numeric covariate, and one log odds ratio per active arm. Subjects without an "
        "end-of-treatment grade are not analysed. The effect is the odds ratio of a lower "
        "grade with the arm versus control; above 1 is benefit."
    ),
    "intensity": (
        "Each subject's mean cramp intensity (0-10) over the rated treatment-period diary days "
        "was modelled by beta regression of the mean divided by 10 (logit link, squeezed into "
        "the open interval as in Smithson and Verkuilen 2006), with the logit of the subject's "
        "run-in mean as covariate and a precision that grows with the days the subject rated "
        "(log precision linear in the centred log days, slope estimated), so that a mean of one "
        "rated day weighs less than a mean of forty. Subjects with at least a week of "
        "treatment-period diary and no cramp have mean 0 (composite strategy, the default; "
        "analysis.secondary.intensity_strategy while_on_cramps leaves them out, which is not a "
        "randomised comparison); subjects with cramps but no rating are not analysed. "
        "The effect is the difference in mean intensity, arm minus control, in points of the "
        "0-10 scale, standardised over the trial's subjects; below 0 means milder cramps "
        "(benefit)."
    ),
    "responder": (
        "Each subject was classed as a responder when the treatment-period cramp rate was at "
        "least the prespecified fraction below the run-in rate (rates per diarised day, so "
        "missing diary days are never counted as days without cramps); a withdrawn subject is "
        "a non-responder (composite strategy, the default; analysis.secondary."
        "responder_withdrawal observed judges them on the days diarised before withdrawal). "
        "Responder status was modelled by logistic regression on arm. The effects are the "
        "risk difference (share of responders, arm minus control; above 0 is benefit) and the "
        "risk ratio (above 1 is benefit)."
    ),
    "safety": (
        "The number of subjects with at least one adverse event of a category was modelled as "
        "binomial per arm and category (all randomised subjects as denominators), with each "
        "active arm's log odds ratios partially pooled across categories around the arm's "
        "typical log odds ratio, so that a category with one or two events does not swing to "
        "an extreme estimate. The effects are the risk difference (incidence, arm minus "
        "control) and the risk ratio per category; below 0 and below 1 mean fewer subjects "
        "with events on the arm, and P(benefit) is the posterior probability of a lower "
        "incidence than control. A safety model cannot show that a treatment is safe: with "
        "few events every interval is wide."
    ),
}

#: Families and meanings of the secondary models' priors, per endpoint (the models' docstrings;
#: a prior not listed is shown with its settings as they are; family "" lists the settings with
#: the meaning).
SECONDARY_PRIORS: dict[str, dict[str, tuple[str, ...]]] = {
    "ctf": {
        "alpha": ("Normal", "control arm's median log CTF at the mean baseline", "Hz"),
        "log_ratio": ("Normal", "log ratio of each active arm's median CTF to control's"),
        "b": ("Normal", "slope on the centred log baseline CTF"),
        "c": ("Normal", "shift of subjects whose baseline CTF was censored"),
        "sigma": ("LogNormal", "residual SD of log CTF (mu and sd of log sigma)"),
    },
    "afterdischarge": {
        "grade_probs": ("", "grade probabilities of a control subject at the mean baseline, "
                        "on whose cumulative logits the cutpoints are centred"),
        "cutpoint": ("", "SD of the normal prior of each ordered cutpoint around its centre"),
        "beta": ("Normal", "log odds of a higher grade with each active arm versus control; "
                 "the odds ratio of a lower grade is exp(-beta)"),
        "b": ("Normal", "log odds ratio per baseline grade"),
    },
    "intensity": {
        "alpha": ("Normal", "control arm's logit mean intensity / 10 at the mean run-in"),
        "beta": ("Normal", "logit shift of each active arm's mean intensity versus control"),
        "b": ("Normal", "slope on the centred logit of the run-in mean"),
        "phi": ("LogNormal", "precision of the beta distribution at the mean log days rated "
                "(mu and sd of log phi)"),
        "g": ("Normal", "slope of the log precision on the centred log days rated"),
    },
    "responder": {
        "alpha": ("Normal", "control arm's log odds of response"),
        "log_or": ("Normal", "log odds ratio of response, each active arm versus control"),
        "b": ("Normal", "log odds ratio per SD of the run-in log rate"),
    },
    "safety": {
        "mu": ("Normal", "control arm's log odds of an event, per category"),
        "d": ("Normal", "each active arm's typical log odds ratio across categories"),
        "sigma": ("HalfNormal", "spread of an arm's log odds ratios across categories"),
    },
}  # fmt: skip

#: The frequentist twin of each secondary model, in words (``<endpoint>_twin`` rows; the
#: models' docstrings). Formatted with ``twin`` and ``level``.
SECONDARY_TWIN_TEXT = {
    "ctf": "the same interval-censored log-normal likelihood and terms maximised with "
    "statsmodels GenericLikelihoodModel, with {level} Wald intervals on the log scale",
    "afterdischarge": "statsmodels OrderedModel (logit) on the same rows and terms, with "
    "{level} Wald intervals on the log odds scale",
    "intensity": "statsmodels BetaModel on the same rows and terms, the standardised "
    "difference at the maximum-likelihood estimate with a delta-method {level} Wald interval",
    "responder": "per active arm, the two-sample comparison of proportions of statsmodels "
    "(confint_proportions_2indep): Newcombe's hybrid score {level} interval for the risk "
    "difference and the log-adjusted (Gart-Nam) interval for the risk ratio",
    "safety": "per active arm and category, the two-sample comparison of proportions of "
    "statsmodels (confint_proportions_2indep), without pooling across categories: Newcombe's "
    "hybrid score {level} interval for the risk difference and the log-adjusted (Gart-Nam) "
    "interval for the risk ratio",
}


def twin_text(endpoint: str, level: str) -> str:
    """Describe the frequentist twin of a secondary model in one sentence."""
    how = SECONDARY_TWIN_TEXT.get(
        endpoint, "the same comparison estimated by maximum likelihood, with {level} intervals"
    ).format(level=level)
    return f"Frequentist twin ({endpoint}_twin): {how}; it gives no posterior probability."


#: Reader's names and meanings of the properties of ``outcome_measures.csv``.
PROPERTY_TEXT = {
    "icc": ("ICC", "test-retest reliability on the model's (log) scale: the share of the "
            "variance that lies between subjects, from repeated measurements before treatment "
            "(run-in weeks for cramp frequency, the two baseline visits for the CTF); 0 to 1"),
    "icc_observed": ("ICC (observed scale)", "the same on the scale of the measurement "
                     "(cramps per week, Hz)"),
    "sem": ("SEM", "standard error of measurement, in the unit shown"),
    "mdc95": ("MDC95", "minimal detectable change, 1.96 x sqrt(2) x SEM: the smallest change "
              "between two measurements of one patient that exceeds measurement error with "
              "95 % confidence"),
    "sem_ratio": ("SEM as a factor", "exp(SEM) for the log CTF: measurement error as a factor "
                  "on the CTF"),
    "mdc95_ratio": ("MDC95 as a factor", "exp(MDC95) for the log CTF: a change of the CTF by "
                    "more than this factor is detectable"),
    "spearman_runin": ("Spearman rho, baseline", "rank correlation between the run-in cramp "
                       "rate and the baseline CTF: do the two measures agree?"),
    "spearman_change": ("Spearman rho, change", "rank correlation between the change in "
                        "cramps per week and the change in log CTF"),
    "srm": ("SRM", "standardised response mean (mean change / SD of change) in one arm: "
            "responsiveness"),
    "n_per_arm_for_power": ("Patients per arm needed", "patients per arm each endpoint would "
                            "need to detect the effect it showed in this trial with the same "
                            "power (design in the unit and note): a comparison of the measures, "
                            "not a trial plan; an interval without upper end is unbounded"),
}  # fmt: skip


def property_label(prop: Any) -> str:
    """Return the reader's name of an outcome-measure property, ``srm:<arm>`` as ``SRM, <arm>``."""
    base, sep, arm = str(prop).partition(":")
    name = PROPERTY_TEXT.get(base, (label(base), ""))[0]
    return f"{name}, {arm}" if sep else name
