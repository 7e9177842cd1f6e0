"""``crampstats calibration``: bad configuration and arguments are refused with a message."""

from __future__ import annotations

import pytest

from crampstats.cli import main


@pytest.mark.parametrize(
    ("config", "args", "message"),
    [
        ("replicates: 0\n", ["run", "--case", "nb_totals", "--shard", "1"], "replicates"),
        ("cases: [no_such_case]\n", ["summarize"], "no calibration case 'no_such_case'"),
        ("seed: 1\nshards: 2\n", ["run", "--case", "nb_totals", "--shard", "3"], "not in 1..2"),
        ("seed: 1\n", ["run", "--case", "nope", "--shard", "1"], "no calibration case 'nope'"),
        ("colour: red\n", ["summarize"], "colour"),
    ],
)
def test_bad_configuration_is_refused(tmp_path, capsys, config, args, message):
    path = tmp_path / "calibration.yaml"
    path.write_text(config + f"results: {tmp_path / 'results'}\ndocs: {tmp_path / 'docs'}\n")
    code = main(["calibration", args[0], "--config", str(path), *args[1:]])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists() and not (tmp_path / "docs").exists()


def test_summarize_names_the_missing_shard(tmp_path, capsys):
    path = tmp_path / "calibration.yaml"
    path.write_text(f"cases: [nb_totals]\nshards: 2\nresults: {tmp_path / 'r'}\ndocs: {tmp_path}\n")
    assert main(["calibration", "summarize", "--config", str(path)]) == 2
    assert "nb_totals/rows-1-of-2.csv is missing" in capsys.readouterr().err
