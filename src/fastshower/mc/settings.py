"""Physics settings of the Monte Carlo: production cuts, tracking cut-offs and step limits (one source of truth)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from fastshower.errors import ConfigError

#: Range-to-energy conversions of the production cut (fastshower.mc.cuts implements them).
CONVERSIONS = ("geant4", "csda")
#: What files that do not record a setting were made with (the setting did not exist yet).
RECORDED_BEFORE: dict[str, Any] = {"cut_conversion": "csda", "msc": "highland"}
#: Multiple-scattering models of e-/e+ (fastshower.mc.physics.elastic and .msc).
MSC_MODELS = ("wentzel", "highland")
#: Largest accuracy parameters C1, C2 of the mixed elastic scheme (PENELOPE recommends values up to 0.2).
MAX_MIXED_C = 0.2


@dataclass(frozen=True)
class PhysicsSettings:
    """Cuts and step limits. Defaults are comparable to Geant4's EM physics with a 0.7 mm range cut.

    Attributes:
        range_cut_mm: production cut as a range, converted per material into energy thresholds for delta rays
            and bremsstrahlung photons (``cut_conversion``).
        cut_conversion: ``"geant4"``: Geant4's range-to-energy converters (the thresholds a Geant4 user gets for
            the same cut); ``"csda"``: electron CSDA range = cut and 5 photon attenuation lengths = cut, with
            fastshower's own stopping powers and cross-sections (see :mod:`fastshower.mc.cuts`).
        min_cut_MeV: lower bound of the energy cuts (Geant4's 990 eV).
        electron_tracking_cut_MeV: e-/e+ below this kinetic energy stop and deposit it (e+ then annihilate).
        photon_tracking_cut_MeV: photons below this energy are absorbed locally.
        range_rejection_MeV: below this energy an e-/e+ whose residual range cannot take it out of the current
            slab deposits its energy at once (EGS's ESAVE; exact for the ledger, neglects its brems photons).
        step_fraction: a charged step loses at most this fraction of the residual range (Geant4 dRoverRange).
        final_range_mm: ... unless the range is below this (Geant4 finalRange).
        msc: multiple scattering of e-/e+: ``"wentzel"``, the screened-Rutherford cross-section with Moliere's
            screening in a mixed scheme (hard collisions one by one, soft ones grouped at a random hinge: the
            single-scattering tail, backscattering, true path lengths; :mod:`fastshower.mc.physics.elastic`), or
            ``"highland"``, a Gaussian per step with the Highland width (the model of files made before).
        msc_c1, msc_c2: accuracy parameters of the mixed scheme, in (0, 0.2]: the hard mean free path is at most
            C1 transport mean free paths and C2 E / (dE/dx) (PENELOPE's C1, C2; 0.2 is PENELOPE's largest
            recommended value, and showers and backscattering do not change between 0.05 and 0.2:
            docs/physics.md). Smaller is more accurate for thin foils (they need C1 ~ 1e-4) and slower.
        msc_soft_fraction: the longest straight segment of the mixed scheme (grouped soft collisions at one
            random hinge) as a share of the slab's thickness, in (0, 1]: PENELOPE's s_max, whose manual recommends
            a tenth of the thickness, so that every layer is crossed with several soft deflections.
        straggling: sample energy-loss fluctuations in sensors (mean loss elsewhere, where deposits are not
            read out).
        max_particles: capacity of the particle stack (grows when exceeded; this is the start size).
    """

    range_cut_mm: float = 0.7
    cut_conversion: str = "geant4"
    min_cut_MeV: float = 0.00099
    electron_tracking_cut_MeV: float = 0.01
    photon_tracking_cut_MeV: float = 0.001
    range_rejection_MeV: float = 2.0
    step_fraction: float = 0.2
    final_range_mm: float = 0.1
    msc: str = "wentzel"
    msc_c1: float = 0.2
    msc_c2: float = 0.2
    msc_soft_fraction: float = 0.1
    straggling: bool = True
    max_particles: int = 4096

    def __post_init__(self) -> None:
        positive = ("range_cut_mm", "min_cut_MeV", "electron_tracking_cut_MeV", "photon_tracking_cut_MeV",
                    "final_range_mm")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and value == value):
                raise ConfigError(f"physics setting {name}: must be a positive number, got {value!r}")
        if self.cut_conversion not in CONVERSIONS:
            raise ConfigError(f"physics setting cut_conversion: {self.cut_conversion!r} is not one of "
                              f"{', '.join(CONVERSIONS)}")
        if self.msc not in MSC_MODELS:
            raise ConfigError(f"physics setting msc: {self.msc!r} is not one of {', '.join(MSC_MODELS)}")
        for name in ("msc_c1", "msc_c2"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 < value <= MAX_MIXED_C):
                raise ConfigError(f"physics setting {name}: must be in (0, {MAX_MIXED_C}], got {value!r}")
        if not (isinstance(self.msc_soft_fraction, int | float) and 0.0 < self.msc_soft_fraction <= 1.0):
            raise ConfigError(f"physics setting msc_soft_fraction: must be in (0, 1], got {self.msc_soft_fraction!r}")
        if not 0.0 < self.step_fraction <= 1.0:
            raise ConfigError(f"physics setting step_fraction: must be in (0, 1], got {self.step_fraction!r}")
        if self.range_rejection_MeV < 0:
            raise ConfigError("physics setting range_rejection_MeV: must be >= 0")

    def kernel_vector(self) -> np.ndarray:
        """The settings as the transport kernels read them: [e- tracking cut, photon tracking cut,
        range-rejection energy, step fraction, final range, straggling flag, soft-segment fraction of the mixed
        elastic scheme (0: Highland scattering instead)]."""
        soft_fraction = self.msc_soft_fraction if self.msc == "wentzel" else 0.0
        return np.array([self.electron_tracking_cut_MeV, self.photon_tracking_cut_MeV, self.range_rejection_MeV,
                         self.step_fraction, self.final_range_mm, float(self.straggling), soft_fraction])

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, stored in the data files."""
        return asdict(self)

    @classmethod
    def from_recorded(cls, values: dict[str, Any]) -> PhysicsSettings:
        """The settings a data file records; a setting added after the file was made takes the value that
        reproduces the physics of its time (``RECORDED_BEFORE``), not today's default."""
        return cls.from_dict({**RECORDED_BEFORE, **values})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PhysicsSettings:
        """Build from a dict; unknown keys are refused with the list of known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"physics settings: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def recorded_physics(values: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded physics dict with the settings it predates filled in as it was made
    (:meth:`PhysicsSettings.from_recorded`); one that does not parse (another fastshower's) is returned as it
    stands."""
    try:
        return PhysicsSettings.from_recorded(dict(values)).to_dict()
    except (ConfigError, TypeError):
        return dict(values)


def physics_differences(trained_on: Mapping[str, Any], reference: Mapping[str, Any]) -> list[str]:
    """The settings in which two recorded physics dicts differ, as ``"name: a vs b"`` (empty when they agree),
    both read with :func:`recorded_physics`."""
    a, b = recorded_physics(trained_on), recorded_physics(reference)
    return [f"{key}: {a.get(key)!r} vs {b.get(key)!r}" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
