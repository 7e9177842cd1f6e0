rule secondary:
    input:
        f"{RESULTS}/{{trial}}/derived",
    output:
        directory(f"{RESULTS}/{{trial}}/secondary/{{endpoint}}"),
    threads: fit_threads
    resources:
        mem_mb=2000,
    log:
        "logs/{trial}/secondary_{endpoint}.log",
    benchmark:
        f"{BENCHMARKS}/{{trial}}/secondary_{{endpoint}}.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats secondary {input} --endpoint {wildcards.endpoint} --out {output} "
        "--cores {threads} > {log} 2>&1"
