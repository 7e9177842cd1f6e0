"""crampstats: reproducible Bayesian analysis of muscle-cramp trials."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crampstats")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
