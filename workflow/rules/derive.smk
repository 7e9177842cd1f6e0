rule derive:
    input:
        f"{RESULTS}/{{trial}}/validated",
    output:
        directory(f"{RESULTS}/{{trial}}/derived"),
    log:
        "logs/{trial}/derive.log",
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats derive {input} --out {output} > {log} 2>&1"
