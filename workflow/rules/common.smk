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
from crampstats.plan import attach_frozen

RESULTS = "results"
#: The main config file (its frozen-plan record sits beside it): the last --configfile, else
#: the bundled one.
CONFIG_FILE = (workflow.overwrite_configfiles or ["config/config.yaml"])[-1]
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
    """The trial's resolved configuration: its entry over the settings of every trial, with
    the frozen-plan record beside the config file (crampstats plan freeze), if any."""
    entry = {"trial_id": str(trial), **config["trials"][trial]}
    resolved = trial_config(config, entry, f"workflow config (trial {trial})")
    return attach_frozen(resolved, CONFIG_FILE)


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


def secondary_endpoints(wildcards):
    """The trial's planned secondary endpoints, in catalogue order (a params value: a changed
    plan reruns the job)."""
    return " ".join(endpoint.id for endpoint in trial_plan(wildcards.trial).endpoints)


def secondary_input(wildcards):
    """The trial's secondary-endpoint folder, or nothing when no endpoint is planned."""
    if not trial_plan(wildcards.trial).endpoints:
        return []
    return f"{RESULTS}/{wildcards.trial}/secondary"


def secondary_dirs(wildcards):
    """The trial's secondary-endpoint folders, in catalogue order (the compare job's arguments)."""
    return " ".join(
        f"{RESULTS}/{wildcards.trial}/secondary/{endpoint.id}"
        for endpoint in trial_plan(wildcards.trial).endpoints
    )


def primary_flag(wildcards):
    """`--primary` for the trial's primary model (its fit job also runs the prior-sensitivity
    refits), else nothing."""
    return "--primary" if wildcards.model == trial_plan(wildcards.trial).primary.id else ""


def fit_threads(wildcards):
    """One thread per chain; Snakemake caps it at the cores given (`-c N`)."""
    return int(trial_settings(wildcards.trial)["analysis"]["sampler"]["chains"])


def all_outputs():
    """Final targets: every trial's report (which needs its tables, fits and data)."""
    return [f"{RESULTS}/{trial}/report.html" for trial in trial_names()]


def trial_results(wildcards):
    """The trial's results folder (what the report reads)."""
    return f"{RESULTS}/{wildcards.trial}"
