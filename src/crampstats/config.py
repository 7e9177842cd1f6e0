"""Load and check configuration files against their JSON Schemas, filling defaults."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from crampstats.errors import CrampstatsError


class ConfigError(CrampstatsError):
    """A configuration file is unreadable or breaks its schema."""


def schema(name: str) -> dict[str, Any]:
    """Return the packaged JSON Schema ``name`` (e.g. ``"trial"``) as a dict."""
    text = files("crampstats.schemas").joinpath(f"{name}.schema.yaml").read_text()
    return yaml.safe_load(text)


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that validating also fills ``default`` values."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def fill(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = _copy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return jsonschema.validators.extend(validator_class, {"properties": fill})


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def check(config: dict[str, Any], schema_name: str, source: str = "config") -> dict[str, Any]:
    """Validate ``config`` against a packaged schema and return a copy with defaults filled.

    Parameters
    ----------
    config
        Parsed configuration.
    schema_name
        Name of the packaged schema, e.g. ``"trial"``.
    source
        Where the config came from, used in error messages.

    Returns
    -------
    dict
        A deep copy of ``config`` with schema defaults filled in.

    Raises
    ------
    ConfigError
        Naming the offending key and the rule it breaks.
    """
    filled = _copy(config)
    errors = sorted(_Validator(schema(schema_name)).iter_errors(filled), key=lambda e: e.path)
    if errors:
        lines = []
        for err in errors:
            key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"{source}: key {key}: {err.message}")
        raise ConfigError("\n".join(lines))
    return filled


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping, raising :class:`ConfigError` with the file name on failure.

    ``-`` reads standard input (the workflow hands each job its trial's resolved settings so).
    """
    path = Path(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def load_trial_config(path: str | Path | None = None, data_dir: str | Path | None = None) -> dict:
    """Load the configuration of one trial (design, arms, column mapping, thresholds).

    Parameters
    ----------
    path
        Either a trial config following ``schemas/trial.schema.yaml`` (such as ``config/adam.yaml``)
        or the main config, whose ``trials`` mapping names each trial's ``data`` folder; then the
        entry whose folder is ``data_dir`` is used, merged over the mapping file its ``columns`` key
        names. ``None`` gives the defaults.
    data_dir
        The trial's data folder; needed to pick the trial out of a main config.

    Returns
    -------
    dict
        The validated trial configuration with defaults filled.

    Raises
    ------
    ConfigError
        If the file is unreadable, breaks the schema, or lists no trial for ``data_dir``.
    """
    if path is None:
        return check({}, "trial", "defaults")
    path = Path(path)
    raw = read_yaml(path)
    if "trials" not in raw:
        return check(raw, "trial", str(path))
    return trial_config(raw, _trial_entry(raw["trials"], path, data_dir), str(path))


def trial_config(main: Mapping[str, Any], entry: Mapping[str, Any], source: str) -> dict:
    """Resolve one trial of a main configuration: its entry over the settings of every trial.

    Parameters
    ----------
    main
        The main configuration (``seed``, ``analysis``, ``trials``), as read or as the
        Snakemake workflow holds it.
    entry
        The trial's entry of ``trials``, with ``trial_id`` set to its name.
    source
        Where the configuration came from (named in error messages).

    Returns
    -------
    dict
        The validated trial configuration: the mapping file the entry's ``columns`` key names,
        then the main ``seed`` and the entry's other keys; ``analysis`` is merged key by key,
        the main config's first, then the mapping file's, then the entry's own.
    """
    merged: dict[str, Any] = {}
    if entry.get("columns"):
        merged = read_yaml(entry["columns"])
    # main-config settings that apply to every trial; the trial's own file, then its entry win
    if "seed" in main:
        merged["seed"] = main["seed"]
    analysis: dict[str, Any] = {}
    for layer in (main.get("analysis"), merged.get("analysis"), entry.get("analysis")):
        if isinstance(layer, dict):
            analysis = _deep_merge(analysis, layer)
    if analysis:
        merged["analysis"] = analysis
    merged.update({k: v for k, v in entry.items() if k not in ("data", "columns", "analysis")})
    return check(merged, "trial", f"{source} (trial {merged.get('trial_id', '?')})")


def _trial_entry(trials: Any, path: Path, data_dir: str | Path | None) -> dict[str, Any]:
    """Return the main config's ``trials`` entry whose ``data`` folder is ``data_dir``."""
    if not isinstance(trials, dict):
        raise ConfigError(f"{path}: key trials: expected a mapping of trial name -> settings")
    if data_dir is None:
        raise ConfigError(f"{path}: a main config needs the trial's data folder to pick its entry")
    wanted = Path(data_dir).resolve()
    for name, entry in trials.items():
        if isinstance(entry, dict) and Path(str(entry.get("data", ""))).resolve() == wanted:
            return {"trial_id": str(name), **entry}
    known = ", ".join(f"{n} ({e.get('data')})" for n, e in trials.items() if isinstance(e, dict))
    raise ConfigError(f"{path}: key trials: no trial has data folder {data_dir}; known: {known}")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``over``, merging nested mappings key by key."""
    out = _copy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = _copy(value)
    return out
