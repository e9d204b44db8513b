"""Surface spectra of the simulated demo scenes, built from REAL Landsat 8 C2 L2 pixel samples.

The only real spectra shipped with eqi's dependencies are the 120 Landsat 8 Collection 2 Level-2
pixels of ``spyndex/data/spectral.json`` (46 "Vegetation", 37 "Urban", 37 "Water"; surface
reflectance SR_B1..SR_B7 in 0-1 and surface temperature ST_B10 in kelvin).  The seven ESA
WorldCover classes of the simulated land-cover map need more types than that, so they are DERIVED
here, openly, as linear mixtures of those samples (a design choice of the demo, not a published
spectral library):

==========  ================================================================================
class       spectrum at date t
==========  ================================================================================
10 tree     g(t) * vegetation + (1 - g(t)) * urban,  g = 0.88 + 0.10 * s(t)  (evergreen-ish)
20 shrub    same mixture with g = 0.60 + 0.20 * s(t)
30 grass    same mixture with g = 0.35 + 0.40 * s(t)
40 crop     same mixture with g = 0.10 + 0.85 * s(t)  (bare/stubble fields outside the season)
50 built    urban samples
60 bare     the brightest half of the urban samples, SWIR x 1.2 and VIS x 1.08 (soil-like)
80 water    water samples
==========  ================================================================================

``s(t)`` is a phenology curve in 0-1 peaking at the end of July (:func:`phenology`); the "urban"
samples stand in for the soil / dry background of the mixtures because no soil samples exist.
Surface temperature mixes the same way and gets a seasonal shift (:func:`temperature_shift_k`).

Sentinel-2 bands are mapped from the Landsat bands (:func:`landsat_to_s2`): B01<-coastal,
B02<-blue, B03<-green, B04<-red, B08, B8A and B09<-nir, B11<-swir16, B12<-swir22; the red-edge bands
B05-B07 are interpolated between red and nir with a logistic red-edge curve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

from eqi.errors import InputError

__all__ = [
    "LANDSAT_BANDS",
    "S2_BANDS",
    "CLASS_CODES",
    "ReferenceSpectra",
    "ClassTables",
    "load_reference_spectra",
    "build_class_tables",
    "phenology",
    "temperature_shift_k",
    "greenness",
    "PixelEndmembers",
    "pixel_endmembers",
    "surface_spectra",
    "landsat_to_s2",
]

#: Landsat 8/9 L2SP bands in the order of the last axis of every spectrum array here.
LANDSAT_BANDS: tuple[str, ...] = (
    "SR_B1",
    "SR_B2",
    "SR_B3",
    "SR_B4",
    "SR_B5",
    "SR_B6",
    "SR_B7",
    "ST_B10",
)
#: Sentinel-2 L2A bands written by the demo (all at the S2-like resolution).
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip
#: ESA WorldCover codes used by the simulated land-cover map.
CLASS_CODES: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 80)

# g(t) = G_MIN + G_AMP * s(t) per class (design choice [D] of the demo, see module docstring)
_GREEN_MIN = {10: 0.88, 20: 0.60, 30: 0.35, 40: 0.10, 50: 0.0, 60: 0.0, 80: 0.0}
_GREEN_AMP = {10: 0.10, 20: 0.20, 30: 0.40, 40: 0.85, 50: 0.0, 60: 0.0, 80: 0.0}
_BARE_GAIN = np.array([1.08, 1.08, 1.08, 1.08, 1.0, 1.2, 1.2], dtype=np.float64)
_BARE_ST_K = 2.0  # bare ground is warmer than the built-up samples it is made from
_BUILT_HEAT = 1.3  # built-up surfaces follow the seasonal temperature shift 30 % more strongly


@dataclass(frozen=True)
class ReferenceSpectra:
    """Real Landsat 8 C2 L2 pixel samples per type: arrays (n, 8) = SR_B1..SR_B7 (0-1), ST_B10 (K)."""

    vegetation: np.ndarray
    urban: np.ndarray
    water: np.ndarray
    source: str


@dataclass(frozen=True)
class ClassTables:
    """Per-class end-member tables, shape (n_classes, n_samples, 8), float32.

    ``green[k, i]`` and ``background[k, i]`` are the two end-members of sample ``i`` of class
    ``CLASS_CODES[k]``; ``g_min``/``g_amp`` (n_classes,) give the greenness g(t) of the mixture.
    """

    green: np.ndarray
    background: np.ndarray
    g_min: np.ndarray
    g_amp: np.ndarray
    n_samples: int


def load_reference_spectra() -> ReferenceSpectra:
    """Read the spyndex Landsat 8 C2 L2 samples (``spyndex/data/spectral.json``)."""
    try:
        ref = resources.files("spyndex") / "data" / "spectral.json"
        data = json.loads(ref.read_text(encoding="utf-8"))
    except (ModuleNotFoundError, FileNotFoundError, json.JSONDecodeError) as exc:
        raise InputError(
            "the demo needs the Landsat sample spectra shipped with the 'spyndex' package "
            f"(spyndex/data/spectral.json) and could not read them ({exc}); reinstall eqi's "
            "dependencies with 'pip install spyndex'"
        ) from exc
    classes = data["class"]
    rows = sorted(classes, key=int)
    table = np.array([[float(data[b][r]) for b in LANDSAT_BANDS] for r in rows], dtype=np.float64)
    labels = np.array([classes[r] for r in rows])

    def pick(name: str) -> np.ndarray:
        out = table[labels == name]
        if len(out) == 0:
            raise InputError(f"spyndex spectral.json has no '{name}' samples; upgrade spyndex")
        return out

    return ReferenceSpectra(
        vegetation=pick("Vegetation"),
        urban=pick("Urban"),
        water=pick("Water"),
        source="spyndex/data/spectral.json (Landsat 8 Collection 2 Level-2 pixel samples)",
    )


def _tile(samples: np.ndarray, n: int, shift: int = 0) -> np.ndarray:
    idx = (np.arange(n) * 7 + shift) % len(samples)  # deterministic, covers every sample
    return samples[idx]


def build_class_tables(ref: ReferenceSpectra) -> ClassTables:
    """End-member tables of the seven WorldCover classes (see the module docstring)."""
    n = max(len(ref.vegetation), len(ref.urban), len(ref.water))
    veg = _tile(ref.vegetation, n)
    soil = _tile(ref.urban, n, shift=3)
    urban = _tile(ref.urban, n)
    water = _tile(ref.water, n)
    order = np.argsort(ref.urban[:, :7].sum(axis=1))
    bright = ref.urban[order[len(order) // 2 :]].copy()
    bright[:, :7] *= _BARE_GAIN
    bright[:, 7] += _BARE_ST_K
    bare = _tile(bright, n)
    green, background = [], []
    for code in CLASS_CODES:
        if code in (10, 20, 30, 40):
            green.append(veg)
            background.append(soil)
        else:
            same = {50: urban, 60: bare, 80: water}[code]
            green.append(same)
            background.append(same)
    return ClassTables(
        green=np.stack(green).astype(np.float32),
        background=np.stack(background).astype(np.float32),
        g_min=np.array([_GREEN_MIN[c] for c in CLASS_CODES], dtype=np.float32),
        g_amp=np.array([_GREEN_AMP[c] for c in CLASS_CODES], dtype=np.float32),
        n_samples=n,
    )


def phenology(doy: float) -> float:
    """Seasonal greenness s(t) in 0-1 (Gaussian around day-of-year 212, width 55 days)."""
    return float(np.exp(-(((doy - 212.0) / 55.0) ** 2)))


def temperature_shift_k(doy: float) -> float:
    """Seasonal surface-temperature shift (K) added to the sample temperatures (about +10 K in July)."""
    return float(9.0 * np.cos(2.0 * np.pi * (doy - 200.0) / 365.25) + 1.0)


def greenness(tables: ClassTables, doy: float) -> np.ndarray:
    """Mixture weight g(t) per class (n_classes,) float32."""
    return (tables.g_min + tables.g_amp * np.float32(phenology(doy))).astype(np.float32)


@dataclass(frozen=True)
class PixelEndmembers:
    """Date-independent end-members of every pixel of a grid.

    ``base`` is the background end-member and ``diff`` = green - background, both (8, H, W)
    float32; the spectrum at date t is ``base + g(t) * diff``.
    """

    class_index: np.ndarray  # (H, W) position in CLASS_CODES
    base: np.ndarray
    diff: np.ndarray


def pixel_endmembers(
    tables: ClassTables, class_index: np.ndarray, sample_index: np.ndarray
) -> PixelEndmembers:
    """Look up the end-members of each pixel from its class and sample id ((H, W) integer arrays)."""
    flat = class_index.astype(np.intp) * tables.n_samples + sample_index.astype(np.intp)
    nb = tables.green.shape[-1]
    base = np.empty((nb, *class_index.shape), dtype=np.float32)
    diff = np.empty_like(base)
    for b in range(nb):
        bg = np.ascontiguousarray(tables.background[..., b]).ravel()
        gr = np.ascontiguousarray(tables.green[..., b]).ravel()
        base[b] = np.take(bg, flat)
        diff[b] = np.take(gr - bg, flat)
    return PixelEndmembers(class_index=class_index.astype(np.intp), base=base, diff=diff)


def surface_spectra(
    tables: ClassTables,
    pixels: PixelEndmembers,
    doy: float,
    rng: np.random.Generator,
    illumination: np.ndarray | float = 1.0,
    noise_abs: float = 0.0004,
    noise_rel: float = 0.002,
    noise_st_k: float = 0.15,
) -> np.ndarray:
    """Clear-sky surface spectra of one date.

    Parameters
    ----------
    tables : class end-members from :func:`build_class_tables`.
    pixels : per-pixel end-members from :func:`pixel_endmembers`.
    doy : day of year of the acquisition.
    rng : random generator for the per-date noise.
    illumination : multiplicative factor on reflectance (scalar or (H, W)).
    noise_abs, noise_rel : per-date Gaussian noise, sigma = noise_abs + noise_rel * reflectance.
    noise_st_k : per-date Gaussian noise of the surface temperature (K).

    Returns
    -------
    (8, H, W) float32: SR_B1..SR_B7 reflectance (unitless) and ST_B10 (K).
    """
    g = greenness(tables, doy)[pixels.class_index]
    out = pixels.diff * g[None]
    out += pixels.base
    refl = out[:7]
    refl *= np.asarray(illumination, dtype=np.float32)
    # one noise field shared by the reflective bands (cheap; band-correlated like real speckle of
    # the retrieval), an independent one for the temperature
    z = rng.standard_normal(refl.shape[1:], dtype=np.float32)
    sigma = np.float32(noise_abs) + np.float32(noise_rel) * refl
    refl += sigma * z[None]
    heat = np.where(
        pixels.class_index == CLASS_CODES.index(50), np.float32(_BUILT_HEAT), np.float32(1.0)
    )
    out[7] += np.float32(temperature_shift_k(doy)) * heat
    out[7] += np.float32(noise_st_k) * rng.standard_normal(out[7].shape, dtype=np.float32)
    return out


def _red_edge_weight(wavelength_um: float) -> float:
    return float(1.0 / (1.0 + np.exp(-(wavelength_um - 0.718) / 0.014)))


def landsat_to_s2(spectra: np.ndarray) -> dict[str, np.ndarray]:
    """Map (>=7, H, W) Landsat SR_B1..SR_B7 reflectance to the Sentinel-2 bands of ``S2_BANDS``.

    Red-edge bands: ``red + w(lambda) * (nir - red)`` with a logistic red edge centred at
    718 nm (w = 0.27, 0.83, 0.99 for B05/B06/B07).
    """
    red, nir = spectra[3], spectra[4]
    out = {
        "B01": spectra[0],
        # B09 (945 nm) is a water-vapour band; the demo has no such spectra and uses the NIR
        # plateau, which is what it sees over land outside absorption.  Simulated, not physics.
        "B09": nir,
        "B02": spectra[1],
        "B03": spectra[2],
        "B04": red,
        "B08": nir,
        "B8A": nir,
        "B11": spectra[5],
        "B12": spectra[6],
    }
    for band, wl in (("B05", 0.704), ("B06", 0.740), ("B07", 0.783)):
        out[band] = red + np.float32(_red_edge_weight(wl)) * (nir - red)
    return {b: out[b] for b in S2_BANDS}
