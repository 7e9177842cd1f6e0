rule derive:
    input:
        f"{RESULTS}/{{trial}}/validated",
    output:
        directory(f"{RESULTS}/{{trial}}/derived"),
    priority: 3  # cheap and unblocks the rest: first (docs/design.md, "Design decisions")
    log:
        "logs/{trial}/derive.log",
    benchmark:
        f"{BENCHMARKS}/{{trial}}/derive.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats derive {input} --out {output} > {log} 2>&1"
