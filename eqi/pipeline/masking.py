"""The run's masking rules: the ``mask`` method profile with the run configuration's overrides.

``configs/methods/mask.yaml`` holds the defaults with their verification tags; a run config's
``mask:`` section (:class:`eqi.config.MaskConfig`) overrides single values.  The result is what
:func:`eqi.pipeline.stack.prepare_inputs` applies and what the task metadata records
(:func:`mask_metadata`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from eqi.config import RunConfig
from eqi.params import Param, Profile
from eqi.science.mask import MaskRules

__all__ = ["mask_profile", "mask_rules", "s2_offset_check_params", "mask_metadata"]

_OVERRIDABLE = ("qa_pixel_bad", "scl_bad", "buffer_px", "valid_range", "radsat")


def mask_profile(config: RunConfig, profile: Profile) -> Profile:
    """The ``mask`` profile with every value the run config sets replaced (source recorded)."""
    overrides: dict[str, Param] = {}
    for key in _OVERRIDABLE:
        value = getattr(config.mask, key)
        if value is not None:
            overrides[key] = Param(value, "[D]", f"run configuration override (mask.{key})")
    out = profile.with_overrides(overrides) if overrides else profile
    if config.mask.s2_offset_check is not None:
        data = out.to_dict()
        data["sentinel2_offset_check"]["mode"] = {
            "value": config.mask.s2_offset_check,
            "tag": "[D]",
            "source": "run configuration override (mask.s2_offset_check)",
        }
        out = Profile(out.name, data, out.sha256)
    return out


def mask_rules(config: RunConfig, profile: Profile) -> MaskRules:
    """:class:`MaskRules` of a run: the profile's values, overridden by ``config.mask``."""
    return MaskRules.from_profile(mask_profile(config, profile))


def s2_offset_check_params(config: RunConfig, profile: Profile) -> Mapping[str, Any]:
    """Settings of the Sentinel-2 offset check (``sentinel2_offset_check`` with the run's mode)."""
    return mask_profile(config, profile)["sentinel2_offset_check"]


def mask_metadata(rules: MaskRules, profile: Profile) -> dict[str, Any]:
    """JSON-ready record of the rules applied and the profile they came from."""
    return {"rules": asdict(rules), "profile": profile.provenance()}
