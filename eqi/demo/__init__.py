"""The offline demo: a small SIMULATED scene archive that eqi reads like delivered scenes."""

from __future__ import annotations

from eqi.demo.simulate import SimulatedArchive, simulate_archive

__all__ = ["SimulatedArchive", "simulate_archive"]
