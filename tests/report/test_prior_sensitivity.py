"""The report's prior sensitivity section (``crampstats.report.prior_sensitivity``).

Built from a hand-written ``tables/prior_sensitivity.csv`` whose conclusions are known: one arm
whose conclusion changes under the sceptical prior, one whose does not, and power-scaling rows
with one flagged parameter.
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from crampstats.compare.sensitivity import PRIOR_SENSITIVITY_COLUMNS
from crampstats.report.prior_sensitivity import (
    power_scaling_sentences,
    prior_sensitivity_section,
    refit_sentences,
)

DEFAULT = '{"prior_log_rr_sd": 1.0}'
SCEPTICAL = '{"prior_log_rr_sd": 0.2245}'


def _row(**values) -> dict:
    base = dict.fromkeys(PRIOR_SENSITIVITY_COLUMNS, None)
    base.update(trial_id="t", endpoint="cramp_frequency", model="nb_totals", primary=True,
                status="ok", flag=False, reason="")  # fmt: skip
    base.update(values)
    return base


def _table() -> pd.DataFrame:
    refit = {"method": "refit", "parameter": "log_rr"}
    rows = [
        _row(**refit, prior="default", prior_settings=DEFAULT, arm="quinine", rr_median=0.8,
             rr_lower=0.66, rr_upper=0.97, p_rr_below_1=0.985),
        _row(**refit, prior="sceptical", prior_settings=SCEPTICAL, arm="quinine", rr_median=0.9,
             rr_lower=0.78, rr_upper=1.03, p_rr_below_1=0.94, flag=True,
             reason="the 95% interval below 1 under the default prior but includes 1 under "
             "sceptical"),
        _row(**refit, prior="default", prior_settings=DEFAULT, arm="magnesium", rr_median=1.0,
             rr_lower=0.8, rr_upper=1.25, p_rr_below_1=0.5),
        _row(**refit, prior="sceptical", prior_settings=SCEPTICAL, arm="magnesium",
             rr_median=1.0, rr_lower=0.86, rr_upper=1.16, p_rr_below_1=0.5),
        _row(method="power_scaling", prior="default", parameter="log_rr", arm="quinine",
             psense_prior=0.003, psense_likelihood=0.09),
        _row(method="power_scaling", prior="default", parameter="k", arm="",
             psense_prior=0.08, psense_likelihood=0.09, flag=True,
             reason="potential prior-data conflict"),
        _row(model="frailty_weekly", primary=False, method="power_scaling", prior="default",
             parameter="log_rr", arm="quinine", psense_prior=0.002, psense_likelihood=0.1),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=PRIOR_SENSITIVITY_COLUMNS)


def test_refit_sentences_say_where_the_conclusion_depends_on_the_prior():
    table = _table()
    quinine, magnesium = refit_sentences(table[table["method"] == "refit"], "placebo", "95 %")
    assert quinine.startswith("Quinine versus placebo: the conclusion depends on the prior")
    assert "includes 1 under sceptical" in quinine
    assert "under the sceptical prior (log RR ~ Normal(0, 0.2245)) P(RR < 1) is 0.94" in quinine
    assert "Under the configured prior P(RR < 1) is 0.98 (95 % CrI 0.66 to 0.97)" in quinine
    assert magnesium.startswith("Magnesium versus placebo: the conclusion")
    assert "exceeds 0.975) is the same under every prior tried" in magnesium
    # neutral words: no verdict on the treatment
    for sentence in (quinine, magnesium):
        for word in ("reduced", "effective", "works", "proves"):
            assert word not in sentence


def test_power_scaling_sentences_name_the_flagged_parameters():
    table = _table()
    primary, other = power_scaling_sentences(table[table["method"] == "power_scaling"])
    assert primary.startswith("nb_totals: power-scaling the prior moves the posterior of k")
    assert "not the log rate ratios" in primary
    assert other.startswith("frailty_weekly: power-scaling the prior moves no parameter")


@pytest.mark.parametrize("present", [True, False])
def test_section_reads_the_table_or_is_absent(tmp_path, present):
    (tmp_path / "tables").mkdir()
    if present:
        _table().to_csv(tmp_path / "tables" / "prior_sensitivity.csv", index=False)
    ctx = SimpleNamespace(results=SimpleNamespace(path=tmp_path), control="placebo",
                          level_text="95 %")  # fmt: skip
    section = prior_sensitivity_section(ctx)
    if not present:
        assert section is None
        return
    assert len(section["refit"]) == 2 and len(section["power_scaling"]) == 2
    assert len(section["table"]["rows"]) == len(_table())
