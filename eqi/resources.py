"""Locate the data files that ship with eqi: method profiles (configs/) and boundaries (aoi/).

In a source checkout they are the top-level ``configs/`` and ``aoi/`` folders; in an installed
wheel they are packaged under ``eqi/_data/``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from eqi.errors import ConfigError
from eqi.params import Profile, freeze

__all__ = ["config_dir", "aoi_dir", "load_yaml", "load_profile", "method_profiles", "PROFILE_NAMES"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"eqi data folder '{name}/' not found next to the package; reinstall eqi")


def config_dir() -> Path:
    """Folder holding run configs and ``methods/`` parameter profiles."""
    return _find("configs")


def aoi_dir() -> Path:
    """Folder holding the boundary library (GeoPackages with provenance)."""
    return _find("aoi")


@cache
def load_yaml(path: Path) -> Mapping[str, Any]:
    """A YAML mapping shipped with eqi, read-only (:func:`eqi.params.freeze`); ConfigError if absent."""
    if not path.is_file():
        raise ConfigError(f"eqi configuration file not found: {path}")
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a YAML mapping")
    return freeze(data)


PROFILE_NAMES: tuple[str, ...] = ("indices", "mask", "fvc", "rsei", "landcover")


@cache
def load_profile(name: str) -> Profile:
    """The method profile ``configs/methods/<name>.yaml`` as an immutable :class:`Profile`.

    Each profile carries ``id``, ``version`` and, per parameter, the verification tag from the
    methods spec; the file's sha256 is kept for the provenance of outputs.
    """
    path = config_dir() / "methods" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"method profile '{name}' not found at {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"method profile {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"method profile {path} must hold a YAML mapping")
    return Profile(name, data, hashlib.sha256(path.read_bytes()).hexdigest())


def method_profiles(names: tuple[str, ...] = PROFILE_NAMES) -> dict[str, Any]:
    """Id, version and sha256 of each method profile, for the provenance of outputs."""
    out: dict[str, Any] = {}
    for name in names:
        if (config_dir() / "methods" / f"{name}.yaml").is_file():
            out[name] = load_profile(name).provenance()
    return out
