# Helpers shared by the rules: trials, their plans and the final targets.
#
# Which models and secondary endpoints a trial gets is decided by the package's planner
# (crampstats.catalogue.plan_folder: validate the trial's data, then plan_trial), the same function
# `crampstats analyze` uses, so the workflow and analyze never plan differently. A trial whose data
# break the contract stops the workflow here, with the refusal report, before any job runs.
import functools
import json

from crampstats.catalogue import plan_folder
from crampstats.config import trial_config
from crampstats.models import ENDPOINT

RESULTS = "results"
#: Snakemake `benchmark:` files of every job (wall, CPU, memory); summarised by
#: benchmarks/workflow_table.py into benchmarks/RESULTS.md.
BENCHMARKS = "logs/benchmarks"


def trial_names():
    """Trials to analyse (config key `trials`), in config order."""
    return list(config["trials"])


def trial_data(wildcards):
    """The trial's data folder."""
    return config["trials"][wildcards.trial]["data"]


def trial_files(wildcards):
    """Every file of the trial's data folder, and its column-mapping file if any."""
    entry = config["trials"][wildcards.trial]
    files = sorted(str(p) for p in Path(entry["data"]).iterdir() if p.is_file())
    if entry.get("columns"):
        files.append(entry["columns"])
    return files


@functools.cache
def trial_settings(trial):
    """The trial's resolved configuration: its entry over the settings of every trial."""
    entry = {"trial_id": str(trial), **config["trials"][trial]}
    return trial_config(config, entry, f"workflow config (trial {trial})")


def trial_settings_json(wildcards):
    """The job's trial settings as JSON, handed to `crampstats validate --config -` (a params
    value: a changed setting reruns the trial)."""
    return json.dumps(trial_settings(wildcards.trial), sort_keys=True)


@functools.cache
def trial_plan(trial):
    """The trial's plan (crampstats.catalogue.TrialPlan), made once per Snakemake process."""
    return plan_folder(config["trials"][trial]["data"], trial_settings(trial))


def fit_files(wildcards):
    """The trial's fits, primary model first."""
    return [
        f"{RESULTS}/{wildcards.trial}/fits/{ENDPOINT}__{model.id}.nc"
        for model in trial_plan(wildcards.trial).models
    ]


def secondary_dirs(wildcards):
    """The trial's secondary-endpoint folders, in catalogue order."""
    return [
        f"{RESULTS}/{wildcards.trial}/secondary/{endpoint.id}"
        for endpoint in trial_plan(wildcards.trial).endpoints
    ]


def fit_threads(wildcards):
    """One thread per chain; Snakemake caps it at the cores given (`-c N`)."""
    return int(trial_settings(wildcards.trial)["analysis"]["sampler"]["chains"])


def all_outputs():
    """Final targets: every trial's report (which needs its tables, fits and data)."""
    return [f"{RESULTS}/{trial}/report.html" for trial in trial_names()]


def trial_results(wildcards):
    """The trial's results folder (what the report reads)."""
    return f"{RESULTS}/{wildcards.trial}"
