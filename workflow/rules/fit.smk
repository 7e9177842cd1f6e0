rule fit:
    input:
        f"{RESULTS}/{{trial}}/derived",
    output:
        f"{RESULTS}/{{trial}}/fits/{ENDPOINT}__{{model}}.nc",
    params:
        primary=primary_flag,
    threads: fit_threads
    resources:
        mem_mb=2000,
    priority: 1  # before compare and report (0)
    log:
        "logs/{trial}/fit_{model}.log",
    benchmark:
        f"{BENCHMARKS}/{{trial}}/fit_{{model}}.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats fit {input} --model {wildcards.model} --out {output} --cores {threads} "
        "{params.primary} > {log} 2>&1"
