# Helpers of the power rules (power.smk): configuration, targets, threads, run time.
import functools
import math

from crampstats.power import load_power_config, resolve_design, shard_replicates

POWER_CONFIG = config.get("power_config", "config/power.yaml")


@functools.cache
def power_config():
    """The validated power configuration (read once per Snakemake process)."""
    return load_power_config(POWER_CONFIG)


POWER_RESULTS = power_config()["results"]


def power_summaries():
    """power.csv of every design: the target of `power_all`."""
    return [f"{POWER_RESULTS}/{design}/power.csv" for design in power_config()["designs"]]


def power_decisions(wildcards):
    """Every shard's decisions file of the job's design."""
    k = power_config()["shards"]
    return [
        f"{POWER_RESULTS}/{wildcards.design}/decisions-{i}-of-{k}.parquet"
        for i in range(1, k + 1)
    ]


def power_threads(wildcards):
    """Chains sampled in parallel: analysis.cores, else one CPU per chain (capped by `-c N`)."""
    analysis = power_config()["analysis"]
    return int(analysis["cores"] or analysis["sampler"]["chains"])


def power_runtime(wildcards):
    """Minutes for a shard: about 1 s per fit (0.3 s measured on 2 cores) plus start-up."""
    cfg = power_config()
    fits = len(shard_replicates(cfg["replicates"], int(wildcards.shards), int(wildcards.shard)))
    fits *= len(resolve_design(cfg, wildcards.design).n_values)
    return 10 + math.ceil(fits / 60)




def power_replicates(wildcards):
    """Replicates of a design (the same for every shard; each shard runs its share)."""
    return power_config()["replicates"]


def power_out(wildcards):
    """The design's results folder."""
    return f"{POWER_RESULTS}/{wildcards.design}"
