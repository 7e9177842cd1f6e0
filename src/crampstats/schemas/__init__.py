"""JSON Schemas for configuration files and designs."""
