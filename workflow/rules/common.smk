# Helpers shared by the rules: trials, their plans and the final targets.
#
# Which models and secondary endpoints a trial gets is decided by the package's planner
# (crampstats.catalogue.plan_folder: validate the trial's data, then plan_trial), the same function
# `crampstats analyze` uses, so the workflow and analyze never plan differently. A trial whose data
# break the contract stops the workflow here, with the refusal report, before any job runs.
import functools

from crampstats.catalogue import plan_folder
from crampstats.config import trial_config
from crampstats.models import ENDPOINT

RESULTS = "results"


def trial_names():
    """Trials to analyse (config key `trials`), in config order."""
    return list(config["trials"])


def trial_entry(wildcards):
    """The config entry of the job's trial (a params value: changing it reruns the trial)."""
    return config["trials"][wildcards.trial]


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


def compile_dir(wildcards):
    """A PyTensor compile directory of the job's own: parallel jobs sharing one dead-lock."""
    return f".snakemake/pytensor/{wildcards.trial}__{wildcards.model}"


def secondary_compile_dir(wildcards):
    """A PyTensor compile directory of the job's own."""
    return f".snakemake/pytensor/{wildcards.trial}__{wildcards.endpoint}"


def all_outputs():
    """Final targets: every trial's report (which needs its tables, fits and data)."""
    return [f"{RESULTS}/{trial}/report.html" for trial in trial_names()]


def trial_results(wildcards):
    """The trial's results folder (what the report reads)."""
    return f"{RESULTS}/{wildcards.trial}"
