rule report:
    input:
        tables=f"{RESULTS}/{{trial}}/tables",
        provenance=f"{RESULTS}/{{trial}}/provenance.json",
        validated=f"{RESULTS}/{{trial}}/validated",
        derived=f"{RESULTS}/{{trial}}/derived",
    output:
        report(
            f"{RESULTS}/{{trial}}/report.html",
            caption="../report/report.rst",
            category="Report",
            labels={"trial": "{trial}"},
        ),
    params:
        results_dir=trial_results,
    log:
        "logs/{trial}/report.log",
    benchmark:
        f"{BENCHMARKS}/{{trial}}/report.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats report {params.results_dir} --out {output} > {log} 2>&1"
