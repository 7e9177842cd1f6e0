# The calibration study of every Bayesian model (crampstats.calibration, docs/validation.md).
#
#   snakemake -c all calibration_all                              # locally
#   snakemake --profile workflow/profiles/slurm calibration_all   # shards as Slurm jobs
#
# Cases, replicates, shards and the root seed come from config/calibration.yaml (schema
# src/crampstats/schemas/calibration.schema.yaml); `--config calibration_config=PATH` picks another
# file. One job per case and shard writes <results>/<case>/rows-<shard>-of-<shards>.csv; replicate
# seeds depend only on the root seed, the case and the replicate index, so the recorded study
# does not depend on the sharding. calibration_all records the study in the docs folder.
include: "calibration_common.smk"


rule calibration_all:
    input:
        config=CALIBRATION_CONFIG,
        shards=calibration_shards(),
    output:
        f"{calibration_config()['docs']}/validation/calibration.csv",
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "logs/calibration/summarize.log",
    benchmark:
        "logs/benchmarks/calibration/summarize.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats calibration summarize --config {input.config} > {log} 2>&1"


rule calibration_shard:
    input:
        CALIBRATION_CONFIG,
    output:
        rf"{calibration_config()['results']}/{{case,[a-z0-9_]+}}/rows-{{shard,\d+}}-of-{{shards,\d+}}.csv",
    threads: calibration_config()["cores"]
    resources:
        mem_mb=2000,
        runtime=240,
    log:
        "logs/calibration/{case}/shard-{shard}-of-{shards}.log",
    benchmark:
        "logs/benchmarks/calibration/{case}/shard-{shard}-of-{shards}.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats calibration run --config {input} --case {wildcards.case} "
        "--shard {wildcards.shard} --cores {threads} --quiet > {log} 2>&1"
