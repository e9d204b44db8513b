"""eqi: satellite scenes to ecological-quality products (NDVI, FVC, RSEI, land cover, EI/EQI)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eqi")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
