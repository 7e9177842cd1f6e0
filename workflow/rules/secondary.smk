rule secondary:
    input:
        f"{RESULTS}/{{trial}}/derived",
    output:
        directory(f"{RESULTS}/{{trial}}/secondary/{{endpoint}}"),
    params:
        compile_dir=secondary_compile_dir,
    threads: fit_threads
    resources:
        mem_mb=2000,
    log:
        "logs/{trial}/secondary_{endpoint}.log",
    conda:
        "../envs/crampstats.yaml"
    shell:
        "PYTENSOR_FLAGS=base_compiledir={params.compile_dir} "
        "crampstats secondary {input} --endpoint {wildcards.endpoint} --out {output} "
        "--cores {threads} > {log} 2>&1"
