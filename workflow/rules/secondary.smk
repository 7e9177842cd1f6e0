# One job per trial analyses all its planned secondary endpoints in one process (start-up, imports
# and the first compiled model cost more than most endpoints' sampling; benchmarks/RESULTS.md,
# "Workflow"); each endpoint still has its own folder and a timed line in the log.
rule secondary:
    input:
        f"{RESULTS}/{{trial}}/derived",
    output:
        directory(f"{RESULTS}/{{trial}}/secondary"),
    params:
        endpoints=secondary_endpoints,
    threads: fit_threads
    resources:
        mem_mb=2000,
    priority: 2  # the longest jobs: before the fits, so two cores stay busy to the end
    log:
        "logs/{trial}/secondary.log",
    benchmark:
        f"{BENCHMARKS}/{{trial}}/secondary.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats secondary {input} --endpoint {params.endpoints} --out {output} "
        "--cores {threads} > {log} 2>&1"
