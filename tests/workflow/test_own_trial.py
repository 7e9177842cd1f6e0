"""docs/own-trial.md stays true: its commands exist, and the walk-through runs end to end.

The fast tests read the document: every ``crampstats`` line of a ```bash block parses with the
real argument parser, every path a ``snakemake`` line names exists or is made by the walk-through,
and the config files it shows are valid. The slow test runs the walk-through in a temporary folder,
in-process (``crampstats.cli.main``): ``init`` on ``data/example_export``, ``validate`` with the
written config, then ``analyze`` with fast sampler settings merged in, and ``report``.
"""

from __future__ import annotations

import argparse
import itertools
import re
import shlex
from typing import Any

import pandas as pd
import pytest
import yaml
from helpers import ROOT

from crampstats import cli
from crampstats.config import check

DOC = ROOT / "docs" / "own-trial.md"
EXPORT = ROOT / "data" / "example_export"
#: Settings that make the walk-through's analysis fast (merged into the config ``init`` writes).
FAST = {
    "analysis": {
        "sampler": {"chains": 2, "draws": 200, "tune": 200},
        "diagnostics": {"rhat_max": 1.1, "ess_bulk_min": 50, "ess_tail_min": 50},
        "secondary": {"endpoints": ["location", "safety"]},
    }
}
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_FILE_HEADER = re.compile(r"#\s*(\S+\.ya?ml)\s*")


def _blocks(language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(DOC.read_text(encoding="utf-8"))
            if lang == language]


def _commands(program: str) -> list[list[str]]:
    """The ``program`` lines of the bash blocks, split as the shell splits them (no comments)."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(f"{program} "):
                out.append(shlex.split(line, comments=True))
    return out


def _doc_files() -> dict[str, str]:
    """Files the document shows whole: yaml blocks whose first line is ``# NAME.yaml``."""
    files = {}
    for block in _blocks("yaml"):
        header = _FILE_HEADER.fullmatch(block.splitlines()[0])
        if header:
            files[header.group(1)] = block
    return files


def _created() -> set[str]:
    """Paths the walk-through makes: ``--out`` of its commands, shell redirections, files shown."""
    made = set(_doc_files())
    for argv in _commands("crampstats"):
        made.update(argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--out")
    for block in _blocks("bash"):
        made.update(re.findall(r">\s*(\S+)", block))
    return made


def _available(path: str, made: set[str]) -> bool:
    """Whether ``path`` exists in the repository or is (in) something the walk-through makes."""
    return (ROOT / path).exists() or any(path == m or path.startswith(f"{m}/") for m in made)


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def test_document_shows_every_step():
    text = DOC.read_text(encoding="utf-8")
    for heading in ("Look at the export", "Let crampstats guess", "Edit what remains", "Validate",
                    "Analyse", "Report", "Several trials", "What to check"):
        assert re.search(rf"^## \d\. {heading}", text, re.MULTILINE), heading
    subcommands = {argv[1] for argv in _commands("crampstats")}
    assert {"init", "validate", "analyze", "report"} <= subcommands
    assert _commands("snakemake"), "no snakemake command in the walk-through"


def test_crampstats_commands_exist():
    commands = _commands("crampstats")
    assert commands
    parser = cli.build_parser()
    made = _created()
    for argv in commands:
        line = shlex.join(argv)
        try:
            args = parser.parse_args(argv[1:])
        except SystemExit as exc:  # argparse's refusal of an unknown sub-command or option
            raise AssertionError(f"docs/own-trial.md: `{line}` does not parse") from exc
        # spelled out in full: argparse would also take an abbreviation such as --con
        options = {o for action in _subparser(parser, argv[1])._actions
                   for o in action.option_strings}
        for token in argv[2:]:
            if token.startswith("-"):
                assert token.split("=")[0] in options, f"`{line}`: {token} is not spelled out"
        for name in ("data_dir", "config", "results_dir"):
            value = getattr(args, name, None)
            if value is not None:
                assert _available(str(value), made), f"`{line}`: {value} is nowhere"


def test_snakemake_commands_name_existing_files():
    commands = _commands("snakemake")
    assert commands
    made = _created()
    for argv in commands:
        paths = [value for option, value in itertools.pairwise(argv)
                 if option in ("-s", "--snakefile", "--configfile", "--configfiles", "--profile",
                               "--directory", "-d")]
        assert paths, f"`{shlex.join(argv)}` names no file"
        for path in paths:
            assert _available(path, made), f"`{shlex.join(argv)}`: {path} is nowhere"


def test_config_files_shown_are_valid():
    files = _doc_files()
    assert {"my_trial.yaml", "my.yaml"} <= set(files)
    trial = check(yaml.safe_load(files["my_trial.yaml"]), "trial", "docs/own-trial.md")
    assert trial["control_arm"] in trial["arms"]
    assert trial["analysis"]["covariates"]
    main = yaml.safe_load(files["my.yaml"])
    for name, entry in main["trials"].items():
        assert _available(entry["data"], set()), f"trial {name}: {entry['data']} is nowhere"
        assert entry["columns"] in files, f"trial {name}: {entry['columns']} is not shown"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.slow
def test_walk_through_runs(tmp_path):
    config = tmp_path / "my_trial.yaml"
    assert cli.main(["init", str(EXPORT), "--out", str(config)]) == 0
    assert cli.main(["validate", str(EXPORT), "--config", str(config)]) == 0

    # the config the document shows (step 3) validates too
    edited = tmp_path / "edited.yaml"
    edited.write_text(_doc_files()["my_trial.yaml"], encoding="utf-8")
    assert cli.main(["validate", str(EXPORT), "--config", str(edited)]) == 0

    settings = _merge(yaml.safe_load(config.read_text(encoding="utf-8")), FAST)
    config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    out = tmp_path / "results" / "my_trial"
    code = cli.main(["analyze", str(EXPORT), "--config", str(config), "--out", str(out),
                     "--quiet"])
    assert code == 0
    effects = pd.read_csv(out / "tables" / "effects.csv")
    assert set(effects["model"]) == {"nb_totals", "frailty_weekly"}
    assert set(effects.loc[effects["primary"], "model"]) == {"nb_totals"}
    assert cli.main(["report", str(out)]) == 0
    assert (out / "report.html").is_file()
