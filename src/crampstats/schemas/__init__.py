"""JSON Schemas for configuration files and designs (data files, read by crampstats.config)."""

__all__: list[str] = []
