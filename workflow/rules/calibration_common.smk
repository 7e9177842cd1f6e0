# Helpers of the calibration rules (calibration.smk): configuration and targets.
import functools

from crampstats.calibration import load_calibration_config, selected_cases, shard_path

CALIBRATION_CONFIG = config.get("calibration_config", "config/calibration.yaml")


@functools.cache
def calibration_config():
    """The validated calibration configuration (read once per Snakemake process)."""
    return load_calibration_config(CALIBRATION_CONFIG)


def calibration_shards():
    """Every shard file of every selected case: the input of calibration_all."""
    cfg = calibration_config()
    return [
        str(shard_path(cfg["results"], case.name, cfg["shards"], i))
        for case in selected_cases(cfg, CALIBRATION_CONFIG)
        for i in range(1, cfg["shards"] + 1)
    ]
