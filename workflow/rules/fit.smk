rule fit:
    input:
        f"{RESULTS}/{{trial}}/derived",
    output:
        f"{RESULTS}/{{trial}}/fits/{ENDPOINT}__{{model}}.nc",
    params:
        compile_dir=compile_dir,
    threads: fit_threads
    resources:
        mem_mb=2000,
    log:
        "logs/{trial}/fit_{model}.log",
    conda:
        "../envs/crampstats.yaml"
    shell:
        "PYTENSOR_FLAGS=base_compiledir={params.compile_dir} "
        "crampstats fit {input} --model {wildcards.model} --out {output} --cores {threads} "
        "> {log} 2>&1"
