"""Event-level physics checks: a candidate event sample (e.g. hybrid, some showers made by a fast model) against a
reference (full Monte Carlo) on the same events.

An event image holds the showers of several particles at once, so the per-shower observables of
:mod:`fastshower.validate.observables` do not apply to it. Here each cell of an event image is given to the particle
whose shower axis passes nearest to it in (x, y) at that cell's layer; the cells of a particle make its *cluster*.
The axis of a particle is the straight line from its entry point ``(x_mm, y_mm)`` on the front face (z = 0) along
its direction: ``x(z) = x0 + z tan(theta) cos(phi)``, ``y(z) = y0 + z tan(theta) sin(phi)``, with z the depth of the
layer's sensor mid-plane (from the geometry's slabs). Cell centres are ``x = (i + 0.5) pitch - half_width_x``, as in
:mod:`fastshower.geometry` (0 = grid centre).

Observables (:func:`event_observables`), energies in GeV, lengths in mm:

- ``deposit_GeV`` (per event): the image's sum; ``longitudinal`` (per event, n_layers): the image summed over x, y,
  divided by the event's deposit (the profile's shape).
- ``cluster_GeV`` (per particle): the energy of its cluster; ``cluster_fraction``: cluster_GeV / kinetic energy,
  the per-particle response.
- ``centroid_x_mm``, ``centroid_y_mm`` (per particle): the energy-weighted centre of its cluster projected back along
  the particle's direction to the front face, minus the entry point (0 for an unbiased shower position, also for an
  inclined particle); NaN for an empty cluster.
- ``separation_mm`` (per pair of particles of one event): the distance between the two clusters' front-face centroids
  minus the distance between the two entry points; ``pair_index`` (n_pairs, 2) the two particles' rows.

The checks (:func:`compare_events`) follow the shower report's pass rule (``docs/validation.md``,
:mod:`fastshower.validate.report`): ``value <= max(factor * floor, tolerance)``, a check with fewer than
``MIN_SHOWERS`` events / particles / pairs in either sample is "insufficient", never a pass. One difference: the
floor here is the statistical *standard error* of the value for two independent samples of these sizes (computed,
not measured on a second reference sample), so a candidate drawn from the reference's distribution gives values of
about one floor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from fastshower.data.events import EventShowers
from fastshower.errors import ConfigError
from fastshower.events import describe, particle_label
from fastshower.validate.report import MIN_SHOWERS, threshold

if TYPE_CHECKING:  # the validation layer imports no detector code at run time (see validate/__init__.py)
    from fastshower.geometry import Calorimeter

#: Absolute tolerances of the pass rule ``value <= max(factor * floor, tolerance)``, per check. Relative checks
#: (response, resolution, spreads, profile) are fractions, position checks are in mm. Split rows (by particle kind,
#: by fast / transported) use the tolerance of their check.
TOLERANCES: dict[str, float] = {
    # |mean deposit ratio - 1|: 0.5 % is below the response differences that matter for a calorimeter's scale
    "response": 0.005,
    # |std ratio - 1| of the event deposit
    "resolution": 0.02,
    # |mean cluster_fraction ratio - 1| and |std ratio - 1|, per particle
    "particle_response": 0.005,
    "particle_spread": 0.02,
    # |difference of the mean centroid offsets| in mm: 0.1 mm is ~2 % of a 5.1 mm cell
    "centroid_x": 0.1,
    "centroid_y": 0.1,
    # |difference of the mean separation offset| and of its standard deviation, mm
    "separation": 0.1,
    "separation_spread": 0.1,
    # per-layer |mean profile ratio - 1| at layers holding > PROFILE_MIN_SHARE of the deposit
    "profile": 0.01,
    # sum over layers |mean profile difference| / sum of the reference's mean profile (the 3DGAN-style L1 error)
    "profile_rel_err": 0.02,
}
#: Layers tested by the "profile" check: those whose mean share of the reference's event deposit exceeds this.
PROFILE_MIN_SHARE = 0.01
#: Events per chunk are chosen so that a chunk holds at most this many cells (bounds the memory of the hit arrays).
_CHUNK_CELLS = 4_000_000
#: The statuses a check can have, counted in the result.
_STATUSES = ("pass", "fail", "insufficient", "n/a")


def sensor_depths_mm(calorimeter: Calorimeter) -> np.ndarray:
    """(n_layers,) depth in mm of each readout layer's sensor mid-plane, measured from the front face."""
    slabs = calorimeter.slabs
    depth = np.full(calorimeter.n_layers, np.nan)
    sensor = slabs.sensor_layer >= 0
    # measured from the first slab's front, so that the front face is z = 0 whatever the slab table's origin
    mid = 0.5 * (slabs.z_front_mm + slabs.z_back_mm) - slabs.z_front_mm[0]
    depth[slabs.sensor_layer[sensor]] = mid[sensor]
    return depth


def event_observables(sample: EventShowers, calorimeter: Calorimeter) -> dict[str, np.ndarray]:
    """Per-event, per-particle and per-pair observables of an event sample (see the module docstring).

    Returns float64 arrays: ``deposit_GeV`` (N,), ``longitudinal`` (N, n_layers) (NaN rows for events without
    deposit), ``cluster_GeV``, ``cluster_fraction``, ``centroid_x_mm``, ``centroid_y_mm`` (P,) in the particle table's
    order (NaN centroids for empty clusters, NaN fractions for particles of zero energy), ``separation_mm`` (n_pairs,)
    and ``pair_index`` (n_pairs, 2) int64 rows of the two particles (first < second), pairs event by event. Cells of an
    event without particles count in its deposit and profile only. ``ConfigError`` when the images do not have the
    calorimeter's cell shape or the particle table another number of events.
    """
    images = sample.images
    if images.ndim != 4 or tuple(images.shape[1:]) != calorimeter.cell_shape:
        raise ConfigError(f"event images of shape {tuple(images.shape[1:])} do not match the geometry "
                          f"'{calorimeter.name}' ({calorimeter.cell_shape})")
    particles = sample.particles
    n_events, nx, ny, nz = images.shape
    if particles.n_events != n_events:
        raise ConfigError(f"the particle table lists {particles.n_events} events, the images {n_events}")
    pitch = calorimeter.grid.pitch_mm
    x_cell = (np.arange(nx) + 0.5) * pitch - calorimeter.grid.half_width_x_mm
    y_cell = (np.arange(ny) + 0.5) * pitch - calorimeter.grid.half_width_y_mm
    z_layer = sensor_depths_mm(calorimeter)
    # the axis' transverse displacement per mm of depth
    slope_x = np.tan(particles.theta_rad) * np.cos(particles.phi_rad)
    slope_y = np.tan(particles.theta_rad) * np.sin(particles.phi_rad)
    x0, y0 = particles.x_mm, particles.y_mm
    offsets = particles.offsets()
    counts = np.diff(offsets)
    n_particles = len(particles)

    deposit = images.sum(axis=(1, 2, 3), dtype=np.float64)
    layers = images.sum(axis=(1, 2), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        longitudinal = np.where(deposit[:, None] > 0, layers / deposit[:, None], np.nan)

    energy_sum = np.zeros(n_particles)
    x_sum = np.zeros(n_particles)  # energy-weighted sums of the cells' front-face projections
    y_sum = np.zeros(n_particles)
    per_event = nx * ny * nz
    step = max(1, _CHUNK_CELLS // per_event)
    for start in range(0, n_events if n_particles else 0, step):
        stop = min(n_events, start + step)
        flat = images[start:stop].reshape(-1)
        hit = np.flatnonzero(flat)  # showers are sparse: work on the cells that hold energy only
        weight = flat[hit].astype(np.float64)
        ev, ix, iy, layer = np.unravel_index(hit, (stop - start, nx, ny, nz))
        ev = ev + start
        xc, yc, zc = x_cell[ix], y_cell[iy], z_layer[layer]
        n_here = counts[ev]
        best = np.full(hit.shape, -1, dtype=np.int64)
        best_d2 = np.full(hit.shape, np.inf)
        # one pass per particle slot of the busiest event: vectorised over cells, short loop
        for slot in range(int(counts[start:stop].max(initial=0))):
            present = n_here > slot
            p = np.where(present, offsets[ev] + slot, 0)
            d2 = (xc - x0[p] - zc * slope_x[p]) ** 2 + (yc - y0[p] - zc * slope_y[p]) ** 2
            closer = present & (d2 < best_d2)  # strict: a cell exactly between two axes goes to the first particle
            best[closer] = p[closer]
            best_d2[closer] = d2[closer]
        taken = best >= 0
        p, w = best[taken], weight[taken]
        energy_sum += np.bincount(p, weights=w, minlength=n_particles)
        # back along the particle's own direction to z = 0, so that an inclined shower's centroid is its entry point
        x_sum += np.bincount(p, weights=w * (xc[taken] - zc[taken] * slope_x[p]), minlength=n_particles)
        y_sum += np.bincount(p, weights=w * (yc[taken] - zc[taken] * slope_y[p]), minlength=n_particles)

    with np.errstate(invalid="ignore", divide="ignore"):
        centre_x = np.where(energy_sum > 0, x_sum / energy_sum, np.nan)
        centre_y = np.where(energy_sum > 0, y_sum / energy_sum, np.nan)
        fraction = np.where(particles.energy_GeV > 0, energy_sum / particles.energy_GeV, np.nan)

    pairs = _pairs(offsets)
    first, second = pairs[:, 0], pairs[:, 1]
    cluster_distance = np.hypot(centre_x[first] - centre_x[second], centre_y[first] - centre_y[second])
    true_distance = np.hypot(x0[first] - x0[second], y0[first] - y0[second])
    return {
        "deposit_GeV": deposit,
        "longitudinal": longitudinal,
        "cluster_GeV": energy_sum,
        "cluster_fraction": fraction,
        "centroid_x_mm": centre_x - x0,
        "centroid_y_mm": centre_y - y0,
        "separation_mm": cluster_distance - true_distance,
        "pair_index": pairs,
    }


def _pairs(offsets: np.ndarray) -> np.ndarray:
    """(n_pairs, 2) rows (i, j), i < j, of every two particles of one event, event by event."""
    counts = np.diff(offsets)
    most = int(counts.max(initial=0))
    chunks = []
    for i in range(most):
        for j in range(i + 1, most):
            events = np.flatnonzero(counts > j)
            chunks.append(np.stack([offsets[events] + i, offsets[events] + j], axis=1))
    if not chunks:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(chunks).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


# --- statistics ----------------------------------------------------------------------------------------------


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[np.isfinite(x)]


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error sigma / sqrt(n) (NaN below 2 values)."""
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan), math.nan
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def _std_se(x: np.ndarray) -> tuple[float, float]:
    """Standard deviation and its standard error from the variance of the sample variance,
    Var(s^2) = (m4 - (n - 3) / (n - 1) s^4) / n, SE(s) = sqrt(Var(s^2)) / (2 s): sigma / sqrt(2 (n - 1)) for a
    Gaussian, larger for a tailed distribution (a leaking or late-starting shower), smaller for a flat one."""
    n = x.size
    if n < 4:
        return (float(x.std(ddof=1)) if n > 1 else math.nan), math.nan
    s = float(x.std(ddof=1))
    if not s > 0:
        return s, 0.0
    m4 = float(np.mean((x - x.mean()) ** 4))
    var_s2 = max(m4 - (n - 3) / (n - 1) * s**4, 0.0) / n
    return s, math.sqrt(var_s2) / (2.0 * s)


def _ratio(ref: tuple[float, float], cand: tuple[float, float]) -> tuple[float, float]:
    """|cand / ref - 1| and its standard error for independent estimates (value, se) (first-order propagation)."""
    (a, se_a), (b, se_b) = ref, cand
    if not (math.isfinite(a) and math.isfinite(b)) or a == 0:
        return math.nan, math.nan
    return abs(b / a - 1.0), math.sqrt((b * se_a / a) ** 2 + se_b**2) / abs(a)


def _difference(ref: tuple[float, float], cand: tuple[float, float]) -> tuple[float, float]:
    """|cand - ref| and its standard error for independent estimates (value, se)."""
    (a, se_a), (b, se_b) = ref, cand
    return abs(b - a), math.hypot(se_a, se_b)


# --- checks --------------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    """A plain float for JSON, None for NaN / inf / None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _row(check: str, observable: str, unit: str, value: float, floor: float, ref: float, cand: float,
         n_ref: int, n_cand: int, tol: Mapping[str, float], factor: float, split: str | None = None,
         applies: bool = True, **extra: Any) -> dict[str, Any]:
    """One check: pass rule ``value <= max(factor * floor, tolerance)``; "insufficient" below MIN_SHOWERS entries in
    either sample, "n/a" when the value cannot be computed (or, ``applies`` False, the check has nothing to test)."""
    limits = {check: tol[check], "factor": factor}
    floor_ok = floor if math.isfinite(floor) else None
    limit = threshold(check, floor_ok, limits)
    n = min(n_ref, n_cand)
    if not applies:
        status = "n/a"
    elif n < MIN_SHOWERS:
        status = "insufficient"
    elif not math.isfinite(value):
        status = "n/a"
    else:
        status = "pass" if value <= limit else "fail"
    return {"check": check, "split": split, "observable": observable, "unit": unit, "value": _num(value),
            "floor": _num(floor), "tolerance": float(tol[check]), "factor": float(factor), "threshold": _num(limit),
            "n": int(n), "n_ref": int(n_ref), "n_cand": int(n_cand), "ref": _num(ref), "cand": _num(cand),
            "status": status, **extra}


def _mean_and_spread(checks: dict[str, dict[str, Any]], names: tuple[str, str], observable: str, unit: str,
                     ref: np.ndarray, cand: np.ndarray, tol: Mapping[str, float], factor: float, relative: bool,
                     split: str | None = None, applies: bool = True) -> None:
    """Add the rows comparing the mean and the standard deviation of one observable (relative differences for
    ``relative``, else absolute ones in the observable's unit)."""
    a, b = _finite(ref), _finite(cand)
    compare = _ratio if relative else _difference
    key = "" if split is None else f"[{split}]"
    for name, stat in zip(names, (_mean_se, _std_se), strict=True):
        sa, sb = stat(a), stat(b)
        value, floor = compare(sa, sb)
        checks[name + key] = _row(name, observable, unit, value, floor, sa[0], sb[0], a.size, b.size, tol, factor,
                                  split, applies)


def _profile_rows(checks: dict[str, dict[str, Any]], ref: np.ndarray, cand: np.ndarray, tol: Mapping[str, float],
                  factor: float) -> None:
    """The "profile" (worst layer) and "profile_rel_err" (L1 sum) rows of the mean longitudinal profiles."""
    a = ref[np.all(np.isfinite(ref), axis=1)]
    b = cand[np.all(np.isfinite(cand), axis=1)]
    n_a, n_b = len(a), len(b)
    if min(n_a, n_b) < 2:
        for name in ("profile", "profile_rel_err"):
            checks[name] = _row(name, "longitudinal", "relative", math.nan, math.nan, math.nan, math.nan, n_a, n_b,
                                tol, factor)
        return
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    se_a, se_b = a.std(axis=0, ddof=1) / math.sqrt(n_a), b.std(axis=0, ddof=1) / math.sqrt(n_b)
    tested = np.flatnonzero(mean_a > PROFILE_MIN_SHARE)
    # Sidak: testing L layers at this factor fails identical samples as rarely as one check at ``factor`` sigma
    p_single = 2.0 * (1.0 - NormalDist().cdf(factor))
    p_layer = -math.expm1(math.log1p(-p_single) / max(len(tested), 1))
    factor_layers = NormalDist().inv_cdf(1.0 - p_layer / 2.0) if 0 < p_layer < 1 else factor
    worst, worst_ratio, max_pull = None, -math.inf, 0.0
    for layer in tested:
        value, floor = _ratio((mean_a[layer], se_a[layer]), (mean_b[layer], se_b[layer]))
        limit = threshold("profile", floor, {"profile": tol["profile"], "factor": factor_layers})
        se = math.hypot(se_a[layer], se_b[layer])
        gap = abs(mean_b[layer] - mean_a[layer])
        max_pull = max(max_pull, gap / se if se > 0 else (math.inf if gap > 0 else 0.0))
        ratio = value / limit if limit > 0 else (math.inf if value > 0 else 0.0)
        if ratio > worst_ratio:
            worst, worst_ratio = int(layer), ratio
    if worst is None:
        checks["profile"] = _row("profile", "longitudinal", "relative", math.nan, math.nan, math.nan, math.nan, n_a,
                                 n_b, tol, factor_layers, layers=0)
    else:
        value, floor = _ratio((mean_a[worst], se_a[worst]), (mean_b[worst], se_b[worst]))
        checks["profile"] = _row("profile", "longitudinal", "relative", value, floor, mean_a[worst], mean_b[worst],
                                 n_a, n_b, tol, factor_layers, layer=worst, layers=len(tested),
                                 max_pull=_num(max_pull))
    total = float(mean_a.sum())
    rel_err = float(np.abs(mean_b - mean_a).sum()) / total if total > 0 else math.nan
    # floor: the L1 sum two same-distribution samples give, E|N(0, se)| = sqrt(2 / pi) se per layer
    floor = math.sqrt(2.0 / math.pi) * float(np.hypot(se_a, se_b).sum()) / total if total > 0 else math.nan
    checks["profile_rel_err"] = _row("profile_rel_err", "longitudinal", "relative", rel_err, floor, total,
                                     float(mean_b.sum()), n_a, n_b, tol, factor)


def _same_events(reference: EventShowers, candidate: EventShowers) -> None:
    """``ConfigError`` (one line) unless both samples hold the same events and particles."""
    ra, ca = reference.particles, candidate.particles
    where = "reference vs candidate"
    if ra.n_events != ca.n_events or len(reference.images) != len(candidate.images):
        raise ConfigError(f"{where}: not the same events ({ra.n_events} and {ca.n_events} events)")
    if len(ra) != len(ca):
        raise ConfigError(f"{where}: not the same events (particle tables of {len(ra)} and {len(ca)} rows)")
    offsets = ra.offsets()
    for field, same in (("event", np.equal), ("pdg", np.equal),
                        # a float32 round trip of an energy is still the same particle
                        ("energy_GeV", lambda x, y: np.isclose(x, y, rtol=1e-6, atol=0.0))):
        x, y = getattr(ra, field), getattr(ca, field)
        bad = np.flatnonzero(~same(x, y))
        if bad.size:
            row = int(bad[0])
            event = int(ra.event[row])
            raise ConfigError(f"{where}: not the same events ({describe(event, row - int(offsets[event]))} has "
                              f"{field} {x[row]} and {y[row]}; {bad.size} rows differ)")


def _calorimeter(reference: EventShowers, candidate: EventShowers) -> Calorimeter:
    """The geometry both samples store; ``ConfigError`` when one lacks it or they differ."""
    from fastshower.geometry import Calorimeter

    shapes = reference.images.shape[1:], candidate.images.shape[1:]
    if shapes[0] != shapes[1]:
        raise ConfigError(f"reference vs candidate: cell shapes {tuple(shapes[0])} and {tuple(shapes[1])} differ")
    geometries = []
    for name, sample in (("reference", reference), ("candidate", candidate)):
        if "binning" in sample.showers.attrs:
            raise ConfigError(f"{name}: event checks need a Cartesian grid, not a cylindrical binning")
        geometry = sample.showers.attrs.get("geometry")
        if isinstance(geometry, str):  # stored as JSON text in some files
            geometry = json.loads(geometry)
        if not isinstance(geometry, dict):
            raise ConfigError(f"{name}: no geometry stored (attrs['geometry']): cells cannot be placed in mm")
        geometries.append(geometry)
    if json.dumps(geometries[0], sort_keys=True) != json.dumps(geometries[1], sort_keys=True):
        raise ConfigError(f"reference vs candidate: geometries differ ({geometries[0].get('name', '?')!r} and "
                          f"{geometries[1].get('name', '?')!r})")
    return Calorimeter.from_dict(geometries[0], source="reference geometry")


def compare_events(reference: EventShowers, candidate: EventShowers, factor: float = 3.0,
                   tolerances: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Event-level checks of ``candidate`` against ``reference`` on the same events; a JSON-serialisable dict.

    Both samples must hold the same events (number of events, and the particles' event, pdg and energy arrays) and
    the same geometry, else ``ConfigError`` (one line). Each check (``result["checks"][name]``) has ``value``,
    ``floor`` (the standard error of the value for two independent samples of these sizes: conservative, as the
    samples share their events and, in a hybrid candidate, the transported particles), ``threshold`` =
    ``max(factor * floor, tolerance)`` (:data:`TOLERANCES`, overridable by ``tolerances``), ``n`` (events,
    particles or pairs in the smaller sample), ``ref`` and ``cand`` (the compared statistics) and ``status``: "pass"
    when ``value <= threshold``, "fail" otherwise, "insufficient" when fewer than ``MIN_SHOWERS`` events / particles
    / pairs enter it in either sample, "n/a" when it cannot be computed or has nothing to test (no event with two
    particles for the separation rows). The checks:

    - ``response``: |mean deposit ratio - 1| (cand / ref); floor by first-order propagation of the two means'
      standard errors sigma / sqrt(n).
    - ``resolution``: |ratio of the deposits' standard deviations - 1|; the standard error of each standard
      deviation is sqrt(Var(s^2)) / (2 s) with Var(s^2) = (m4 - (n-3)/(n-1) s^4) / n, which is sigma / sqrt(2 (n-1))
      for a Gaussian and grows with the distribution's tails (no bootstrap: deterministic and cheap).
    - ``particle_response``, ``particle_spread``: the same for the per-particle ``cluster_fraction``; also per
      particle kind (``particle_response[gamma]``, when the events hold several kinds) and, when the candidate has
      both, for its particles made by a fast model and those transported (``[fast]``, ``[transported]``: the same
      particles of the reference against them), so that a difference can be traced to its source.
    - ``centroid_x``, ``centroid_y``: |difference of the mean centroid offsets| (mm), floor the standard error.
    - ``separation``, ``separation_spread``: |difference of the mean separation offset| and of its standard
      deviation (mm), floors the standard errors.
    - ``profile``: the mean longitudinal profiles (layer sums / event deposit) compared layer by layer at the layers
      where the reference's mean share exceeds :data:`PROFILE_MIN_SHARE` (1 %): per layer the relative difference
      of the means against ``max(f * floor, tolerance)``, with ``f`` raised from ``factor`` for the number of layers
      tested L (Sidak: 1 - (1 - p)^(1/L), p the two-sided tail beyond ``factor`` sigma, 3.8 for 20 layers) so that
      identical samples fail as rarely as one check. The row shows the worst layer (largest value / threshold,
      ``layer``), ``layers`` = L and ``max_pull``, the largest |difference| / standard error over those layers.
    - ``profile_rel_err``: sum over layers of |mean profile difference| / sum of the reference's mean profile; floor
      sqrt(2 / pi) sum of the per-layer standard errors / that sum (the L1 sum expected of identical samples).

    Split rows (``split`` not None) fail the verdict when they fail, but their being insufficient does not make it
    INSUFFICIENT (a few photons among many electrons must not leave a sample without verdict). ``verdict``: "FAIL"
    if any check fails, else "INSUFFICIENT" if any unsplit check is insufficient, else "PASS".
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ConfigError(f"event checks: factor must be a number > 0 (got {factor!r})")
    tol = dict(TOLERANCES)
    for key, value in (tolerances or {}).items():
        if key not in tol:
            raise ConfigError(f"event checks: unknown tolerance {key!r} (known: {', '.join(sorted(tol))})")
        tol[key] = float(value)
    _same_events(reference, candidate)
    calorimeter = _calorimeter(reference, candidate)
    ref, cand = event_observables(reference, calorimeter), event_observables(candidate, calorimeter)
    particles = reference.particles
    checks: dict[str, dict[str, Any]] = {}

    _mean_and_spread(checks, ("response", "resolution"), "deposit_GeV", "relative", ref["deposit_GeV"],
                     cand["deposit_GeV"], tol, factor, relative=True)
    names = ("particle_response", "particle_spread")
    _mean_and_spread(checks, names, "cluster_fraction", "relative", ref["cluster_fraction"],
                     cand["cluster_fraction"], tol, factor, relative=True)
    kinds = np.unique(particles.pdg)
    if kinds.size > 1:
        for kind in kinds:
            mask = particles.pdg == kind
            _mean_and_spread(checks, names, "cluster_fraction", "relative", ref["cluster_fraction"][mask],
                             cand["cluster_fraction"][mask], tol, factor, relative=True,
                             split=particle_label(int(kind)))
    fast = np.asarray(candidate.fast, dtype=bool)
    if fast.any() and not fast.all():
        for label, mask in (("fast", fast), ("transported", ~fast)):
            _mean_and_spread(checks, names, "cluster_fraction", "relative", ref["cluster_fraction"][mask],
                             cand["cluster_fraction"][mask], tol, factor, relative=True, split=label)
    for axis in ("x", "y"):
        name, observable = f"centroid_{axis}", f"centroid_{axis}_mm"
        a, b = _finite(ref[observable]), _finite(cand[observable])
        (ma, sa), (mb, sb) = _mean_se(a), _mean_se(b)
        value, floor = _difference((ma, sa), (mb, sb))
        checks[name] = _row(name, observable, "mm", value, floor, ma, mb, a.size, b.size, tol, factor)
    n_pairs = len(ref["separation_mm"])
    _mean_and_spread(checks, ("separation", "separation_spread"), "separation_mm", "mm", ref["separation_mm"],
                     cand["separation_mm"], tol, factor, relative=False, applies=n_pairs > 0)
    _profile_rows(checks, ref["longitudinal"], cand["longitudinal"], tol, factor)

    rows = checks.values()
    statuses = [r["status"] for r in rows]
    if "fail" in statuses:
        verdict = "FAIL"
    elif any(r["status"] == "insufficient" and r["split"] is None for r in rows):
        verdict = "INSUFFICIENT"
    else:
        verdict = "PASS"
    return {
        "n_events": int(particles.n_events),
        "n_particles": int(len(particles)),
        "n_pairs": int(n_pairs),
        "n_fast": int(fast.sum()),
        "geometry": calorimeter.name,
        "min_showers": int(MIN_SHOWERS),
        "factor": float(factor),
        "tolerances": {k: float(v) for k, v in tol.items()},
        "checks": checks,
        "counts": {s: statuses.count(s) for s in _STATUSES},
        "verdict": verdict,
    }


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def format_event_checks(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`compare_events`' result for the terminal: one row per check (name, entries,
    unit, value, floor, threshold, status), then the verdict line."""
    header = ("check", "n", "unit", "value", "floor", "threshold", "status")
    rows = [header]
    for name, r in result["checks"].items():
        status = r["status"].upper() if r["status"] == "fail" else r["status"]
        rows.append((name, str(r["n"]), r["unit"], _fmt(r["value"]), _fmt(r["floor"]), _fmt(r["threshold"]),
                     status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    counts = result.get("counts", {})
    parts = [f"{counts.get('pass', 0)} of {len(result['checks'])} checks pass", f"{counts.get('fail', 0)} fail"]
    if counts.get("insufficient"):
        parts.append(f"{counts['insufficient']} insufficient (fewer than {result['min_showers']} entries)")
    if counts.get("n/a"):
        parts.append(f"{counts['n/a']} n/a")
    lines.append(f"{result['n_events']} events, {result['n_particles']} particles, {result['n_pairs']} pairs: "
                 f"{', '.join(parts)}: {result['verdict']}")
    return "\n".join(lines)
