rule compare:
    input:
        validated=f"{RESULTS}/{{trial}}/validated",
        derived=f"{RESULTS}/{{trial}}/derived",
        fits=fit_files,
        secondary=secondary_input,
    params:
        secondary=secondary_dirs,
    output:
        tables=report(
            directory(f"{RESULTS}/{{trial}}/tables"),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Tables",
            subcategory="{trial}",
            labels={"trial": "{trial}", "table": "{name}"},
        ),
        provenance=f"{RESULTS}/{{trial}}/provenance.json",
    log:
        "logs/{trial}/compare.log",
    benchmark:
        f"{BENCHMARKS}/{{trial}}/compare.tsv"
    conda:
        "../envs/crampstats.yaml"
    shell:
        "crampstats compare {input.derived} --fits {input.fits} --secondary {params.secondary} "
        "--validated {input.validated} --out {output.tables} --provenance {output.provenance} "
        "> {log} 2>&1"
