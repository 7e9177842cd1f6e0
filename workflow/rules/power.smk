# Power, assurance and type I error by simulation (crampstats.power).
#
#   snakemake -c all power_all                                # locally
#   snakemake --profile workflow/profiles/slurm power_all     # shards as Slurm jobs
#   snakemake -c all power_report                             # + results/power/report.html
#
# Designs, replicates and shards come from the power configuration (config/power.yaml, schema
# src/crampstats/schemas/power.schema.yaml), read here with crampstats.power.load_power_config:
# the main config (config/config.yaml) does not describe power runs. Set `power_config` in the
# Snakemake config (`--config power_config=PATH`) to use another file; the rules work both
# included in workflow/Snakefile and on their own (`snakemake -s workflow/rules/power.smk`).
#
# One job per design and shard writes <results>/<design>/decisions-<shard>-of-<shards>.parquet;
# replicate seeds depend only on the replicate index, so the summary does not depend on the
# sharding or on where the shards ran.
include: "power_common.smk"


rule power_all:
    input:
        power_summaries(),


rule power_shard:
    input:
        POWER_CONFIG,
    output:
        rf"{POWER_RESULTS}/{{design,[A-Za-z0-9_.-]+}}/decisions-{{shard,\d+}}-of-{{shards,\d+}}.parquet",
    params:
        replicates=power_replicates,
        out=power_out,
    threads: power_threads
    resources:
        mem_mb=2000,
        runtime=power_runtime,
    log:
        "logs/power/{design}/shard-{shard}-of-{shards}.log",
    benchmark:
        "logs/benchmarks/power/{design}/shard-{shard}-of-{shards}.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats power run --config {input} --design {wildcards.design} "
        "--replicates {params.replicates} --shards {wildcards.shards} --shard {wildcards.shard} "
        "--out {params.out} --cores {threads} > {log} 2>&1"


rule power_summarize:
    input:
        power_decisions,
    output:
        csv=f"{POWER_RESULTS}/{{design,[A-Za-z0-9_.-]+}}/power.csv",
        svg=f"{POWER_RESULTS}/{{design}}/power.svg",
    params:
        directory=power_out,
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "logs/power/{design}/summarize.log",
    benchmark:
        "logs/benchmarks/power/{design}/summarize.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats power summarize {params.directory} > {log} 2>&1"


rule power_report:
    input:
        power_summaries(),
    output:
        f"{POWER_RESULTS}/report.html",
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        "logs/power/report.log",
    benchmark:
        "logs/benchmarks/power/report.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats power report $(dirname {output}) --out {output} > {log} 2>&1"
