rule validate:
    input:
        trial_files,
    output:
        directory(f"{RESULTS}/{{trial}}/validated"),
    params:
        data=trial_data,
        config_file=workflow.configfiles[-1],
        entry=trial_entry,
    log:
        "logs/{trial}/validate.log",
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats validate {params.data} --config {params.config_file} --out {output} > {log} 2>&1"
