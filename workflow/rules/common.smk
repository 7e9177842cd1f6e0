# Helpers shared by the rules: trials, their models and the final targets.
from pathlib import Path

RESULTS = "results"
ENDPOINT = "cramp_frequency"
WITHIN_SUBJECT = ("crossover", "nof1")


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


def models_for(trial):
    """Models fitted for a trial: its own or the global `analysis.models`, else by design."""
    entry = config["trials"][trial]
    listed = (entry.get("analysis") or {}).get("models") or config["analysis"].get("models")
    if listed:
        return list(listed)
    if entry["design"] in WITHIN_SUBJECT:
        return ["crossover"]
    return ["nb_totals", "frailty_weekly"]


def fit_files(wildcards):
    """The trial's fits, primary model first."""
    return [
        f"{RESULTS}/{wildcards.trial}/fits/{ENDPOINT}__{model}.nc"
        for model in models_for(wildcards.trial)
    ]


def fit_threads(wildcards):
    """One thread per chain; Snakemake caps it at the cores given (`-c N`)."""
    return int(config["analysis"]["sampler"]["chains"])


def compile_dir(wildcards):
    """A PyTensor compile directory of the job's own: parallel jobs sharing one dead-lock."""
    return f".snakemake/pytensor/{wildcards.trial}__{wildcards.model}"


def all_outputs():
    """Final targets: every trial's report (which needs its tables, fits and data)."""
    return [f"{RESULTS}/{trial}/report.html" for trial in trial_names()]


def trial_results(wildcards):
    """The trial's results folder (what the report reads)."""
    return f"{RESULTS}/{wildcards.trial}"


SECONDARY = (
    "ctf",
    "afterdischarge",
    "cramp_potential",
    "intensity",
    "responder",
    "safety",
    "location",
    "outcome_measures",
)
SECONDARY_MODELS = ("ctf", "afterdischarge", "intensity", "responder", "safety")


def secondary_for(trial):
    """Secondary endpoints of a trial: `analysis.secondary.endpoints`, else every one (a job
    whose data are absent writes a SKIPPED note); the models need a parallel design."""
    entry = config["trials"][trial]
    own = ((entry.get("analysis") or {}).get("secondary") or {}).get("endpoints")
    listed = own if own is not None else config["analysis"].get("secondary", {}).get("endpoints")
    endpoints = [e for e in SECONDARY if listed is None or e in listed]
    if entry["design"] != "parallel":
        endpoints = [e for e in endpoints if e not in SECONDARY_MODELS]
    return endpoints


def secondary_dirs(wildcards):
    """The trial's secondary-endpoint folders, in a fixed order."""
    return [f"{RESULTS}/{wildcards.trial}/secondary/{e}" for e in secondary_for(wildcards.trial)]


def secondary_compile_dir(wildcards):
    """A PyTensor compile directory of the job's own."""
    return f".snakemake/pytensor/{wildcards.trial}__{wildcards.endpoint}"
