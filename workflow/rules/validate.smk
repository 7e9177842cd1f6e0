rule validate:
    input:
        trial_files,
    output:
        directory(f"{RESULTS}/{{trial}}/validated"),
    params:
        data=trial_data,
        settings=trial_settings_json,
    priority: 3  # cheap and unblocks the rest: first (docs/design.md, "Design decisions")
    log:
        "logs/{trial}/validate.log",
    benchmark:
        f"{BENCHMARKS}/{{trial}}/validate.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "printf '%s' {params.settings:q} | "
        "crampstats validate {params.data} --config - --out {output} > {log} 2>&1"
