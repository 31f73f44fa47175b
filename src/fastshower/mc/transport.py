"""The stepping loop (numba): condensed-history transport of e-, e+ and photons through the slab stack.

For every particle popped from a last-in-first-out stack, repeat: sample the distance to the next discrete
interaction; limit the step by the slab boundary and, for charged particles, by the continuous-loss step
function (a fraction of the residual range); propagate; apply continuous loss (with straggling in sensors) and
multiple-scattering deflection and displacement; do the discrete interaction and push its secondaries.
Energies in MeV, lengths in mm; the shower image and the ledger are in MeV (the caller converts to GeV).

Ledger entries (indices): sensor deposit, passive (absorber/gap) deposit, leakage through the front, the
sides and the back. A positron leaving the detector carries its kinetic energy plus 2 m_e (the energy its
annihilation would have released), so the ledger sums to the available energy of the primary.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastshower.materials import ELECTRON_MASS_MeV as ME
from fastshower.mc import tables as tb
from fastshower.mc.kinematics import deflect, energy_at_range, interpolate, normalise, rotate
from fastshower.mc.physics.annihilation import sample_in_flight
from fastshower.mc.physics.bremsstrahlung import sample_photon_energy, sample_photon_polar
from fastshower.mc.physics.compton import sample_scattered_fraction
from fastshower.mc.physics.elastic import sample_hard_mu, sample_soft_mu, screening_parameter
from fastshower.mc.physics.ionisation import sample_delta_fraction, straggled_loss
from fastshower.mc.physics.msc import highland_theta0, isotropic_cos, scatter
from fastshower.mc.physics.pair import sample_positron_fraction
from fastshower.mc.rng import rand, rng_init, rng_seed

GAMMA, ELECTRON, POSITRON, PI0 = 0, 1, 2, 3
PI0_MASS_MeV = 134.9768
SENSOR, PASSIVE, LEAK_FRONT, LEAK_SIDE, LEAK_BACK = range(5)
N_LEDGER = 5
#: what :func:`simulate_shower` returns when its particle stack was too shallow for the shower
STACK_OVERFLOW = -1
# how a primary left a single slab (transmit_primaries)
TRANSMITTED, BACKSCATTERED, STOPPED = 1, -1, 0
# columns of the particle state
_T, _X, _Y, _Z, _UX, _UY, _UZ = range(7)
_INF = 1e300
# the mixed step's elastic cross-sections are looked up again each time the energy has fallen by this share
_REFRESH = 0.02


@njit(cache=True)
def _boundary_distance(x, y, z, ux, uy, uz, z_front, z_back, half_width):
    """Distance (mm) to the slab's planes and to the side walls, and which one: 1 back, -1 front, 2 side."""
    dist, which = _INF, 0
    if uz > 0.0:
        dist, which = (z_back - z) / uz, 1
    elif uz < 0.0:
        dist, which = (z_front - z) / uz, -1
    if ux != 0.0:
        d = ((half_width if ux > 0.0 else -half_width) - x) / ux
        if d < dist:
            dist, which = d, 2
    if uy != 0.0:
        d = ((half_width if uy > 0.0 else -half_width) - y) / uy
        if d < dist:
            dist, which = d, 2
    return max(dist, 0.0), which


@njit(cache=True)
def _safety(x, y, z, z_front, z_back, half_width):
    """Isotropic distance (mm) to the nearest surface of the slab."""
    return min(z - z_front, z_back - z, half_width - abs(x), half_width - abs(y))


@njit(cache=True)
def _deposit(image, ledger, layer, x, y, energy, half_x, half_y, pitch):
    if energy <= 0.0:
        return
    if layer < 0:
        ledger[PASSIVE] += energy
        return
    ledger[SENSOR] += energy
    ix = int(math.floor((x + half_x) / pitch))
    iy = int(math.floor((y + half_y) / pitch))
    if 0 <= ix < image.shape[0] and 0 <= iy < image.shape[1]:
        image[ix, iy, layer] += energy


@njit(cache=True, inline="always")
def _push(stack_f, stack_i, n, kind, slab, T, x, y, z, ux, uy, uz):
    """Put a particle on the stack; returns the new count. A full stack takes nothing and the count still grows:
    the shower's caller sees ``n > capacity`` (:data:`STACK_OVERFLOW`) and redoes it with a deeper stack (same
    seed, same shower), which keeps the kernel free of growing arrays (a GPU thread cannot allocate)."""
    if n < stack_f.shape[0]:
        stack_f[n, 0], stack_f[n, 1], stack_f[n, 2], stack_f[n, 3] = T, x, y, z
        stack_f[n, 4], stack_f[n, 5], stack_f[n, 6] = ux, uy, uz
        stack_i[n, 0], stack_i[n, 1] = kind, slab
    return n + 1


@njit(cache=True)
def _pi0_decay(state, kinetic, ux, uy, uz):
    """The two photons of an isotropic pi0 -> gamma gamma decay, boosted along u: (energy MeV, direction) of the
    first, then of the second."""
    gamma = (kinetic + PI0_MASS_MeV) / PI0_MASS_MeV
    beta = math.sqrt(1.0 - 1.0 / (gamma * gamma))
    cos_star = isotropic_cos(state)
    sin_star = math.sqrt(max(0.0, 1.0 - cos_star * cos_star))
    phi = 2.0 * math.pi * rand(state)
    half = 0.5 * PI0_MASS_MeV
    k1, w1x, w1y, w1z = _decay_photon(ux, uy, uz, gamma, beta, half, sin_star, cos_star, phi, 1.0)
    k2, w2x, w2y, w2z = _decay_photon(ux, uy, uz, gamma, beta, half, sin_star, cos_star, phi, -1.0)
    return k1, w1x, w1y, w1z, k2, w2x, w2y, w2z


@njit(cache=True, inline="always")
def _decay_photon(ux, uy, uz, gamma, beta, half, sin_star, cos_star, phi, sign):
    """One photon of the pi0 decay (``sign`` +1 or -1: the two are back to back in the rest frame)."""
    c = sign * cos_star
    k = gamma * half * (1.0 + beta * c)
    vx, vy, vz = normalise(sign * half * sin_star * math.cos(phi), sign * half * sin_star * math.sin(phi),
                           gamma * half * (c + beta))
    wx, wy, wz = rotate(ux, uy, uz, vx, vy, vz)
    return k, wx, wy, wz


@njit(cache=True)
def _pick_element(cumulative_row, n_elements, ln_energy, state):
    r = rand(state)
    for j in range(n_elements - 1):
        if r <= interpolate(cumulative_row[j], ln_energy):
            return j
    return n_elements - 1


@njit(cache=True)
def simulate_shower(seed, kind, energy, x0, y0, ux0, uy0, uz0,
                    z_front, z_back, slab_mat, slab_layer, half_width, half_x, half_y, pitch,
                    values, cumulative, element_data, scalars, settings, image, ledger, state, stack_f, stack_i):
    """Transport one primary and all its descendants; accumulate into ``image`` (MeV) and ``ledger`` (MeV).

    ``kind`` is GAMMA, ELECTRON, POSITRON or PI0; ``energy`` its kinetic energy in MeV, entering at
    (x0, y0, 0) with direction (ux0, uy0, uz0). A pi0 decays at the entry point into two photons.
    ``settings``: :meth:`fastshower.mc.settings.PhysicsSettings.kernel_vector`. The caller provides the work
    space: ``state`` (4 x uint64, seeded here from ``seed``), the particle stack ``stack_f`` (capacity x 7 float64)
    and ``stack_i`` (capacity x 2 int64). Returns the number of steps taken (photon flights and charged steps), or
    :data:`STACK_OVERFLOW` when the stack was too shallow: then ``image`` and ``ledger`` hold a partial shower,
    and the caller clears them and runs the same seed again with a deeper stack.

    The CPU (numba njit) and the GPU (numba-cuda, :mod:`fastshower.mc.gpu`) compile this same function: no
    allocation, no Python objects, scalar math from :mod:`math`.
    """
    rng_seed(state, seed)
    e_track, g_track, e_save = settings[0], settings[1], settings[2]
    step_fraction, final_range, straggling = settings[3], settings[4], settings[5] > 0.5
    soft_fraction = settings[6]
    n_slabs = z_front.shape[0]
    capacity = stack_f.shape[0]
    steps = 0
    if kind == PI0:
        k1, v1x, v1y, v1z, k2, v2x, v2y, v2z = _pi0_decay(state, energy, ux0, uy0, uz0)
        n = _push(stack_f, stack_i, 0, GAMMA, 0, k1, x0, y0, z_front[0], v1x, v1y, v1z)
        n = _push(stack_f, stack_i, n, GAMMA, 0, k2, x0, y0, z_front[0], v2x, v2y, v2z)
    else:
        n = _push(stack_f, stack_i, 0, kind, 0, energy, x0, y0, z_front[0], ux0, uy0, uz0)
    while n > 0:
        if n > capacity:
            return STACK_OVERFLOW
        n -= 1
        kind = stack_i[n, 0]
        slab = stack_i[n, 1]
        T, x, y, z = stack_f[n, 0], stack_f[n, 1], stack_f[n, 2], stack_f[n, 3]
        ux, uy, uz = stack_f[n, 4], stack_f[n, 5], stack_f[n, 6]
        alive = True
        while alive:
            m = slab_mat[slab]
            layer = slab_layer[slab]
            if kind == GAMMA:
                if g_track > T:
                    _deposit(image, ledger, layer, x, y, T, half_x, half_y, pitch)
                    break
                # --- photon: fly to the interaction point across slabs ---
                steps += 1
                mfp_left = -math.log(rand(state))
                lnT = math.log(T)
                interacted = False
                while True:
                    m = slab_mat[slab]
                    mu = interpolate(values[m, tb.MU_TOTAL], lnT)
                    dist, which = _boundary_distance(x, y, z, ux, uy, uz, z_front[slab], z_back[slab], half_width)
                    if mu * dist > mfp_left:
                        s = mfp_left / mu
                        x += s * ux
                        y += s * uy
                        z += s * uz
                        interacted = True
                        break
                    mfp_left -= mu * dist
                    x += dist * ux
                    y += dist * uy
                    z += dist * uz
                    if which == 2:
                        ledger[LEAK_SIDE] += T
                        break
                    slab += which
                    if slab < 0:
                        ledger[LEAK_FRONT] += T
                        break
                    if slab >= n_slabs:
                        ledger[LEAK_BACK] += T
                        break
                if not interacted:
                    break
                layer = slab_layer[slab]
                r = rand(state) * interpolate(values[m, tb.MU_TOTAL], lnT)
                mu_pair = interpolate(values[m, tb.MU_PAIR], lnT)
                mu_compton = interpolate(values[m, tb.MU_COMPTON], lnT)
                if r < mu_pair:
                    j = _pick_element(cumulative[m, tb.CUM_PAIR], int(scalars[m, 5]), lnT, state)
                    eps = sample_positron_fraction(state, element_data[m, j, 1], element_data[m, j, 2],
                                                   element_data[m, j, 3], T)
                    phi = 2.0 * math.pi * rand(state)
                    for side in range(2):  # the positron, then the electron, back to back in azimuth
                        charge_kind = POSITRON if side == 0 else ELECTRON
                        total = eps * T if side == 0 else (1.0 - eps) * T
                        theta = sample_photon_polar(state, total)
                        st = math.sin(theta)
                        vx, vy, vz = rotate(ux, uy, uz, st * math.cos(phi), st * math.sin(phi), math.cos(theta))
                        n = _push(stack_f, stack_i, n, charge_kind, slab, max(total - ME, 0.0),
                                                    x, y, z, vx, vy, vz)
                        phi += math.pi
                    # k = T+ + T- + 2 m_e: the positron's ledger carries the 2 m_e (released at annihilation)
                    break
                if r < mu_pair + mu_compton:
                    frac, cos_theta = sample_scattered_fraction(state, T)
                    k_out = frac * T
                    vx, vy, vz = deflect(state, ux, uy, uz, cos_theta)
                    T_e = T - k_out
                    ex, ey, ez = normalise(T * ux - k_out * vx, T * uy - k_out * vy, T * uz - k_out * vz)
                    if T_e >= e_track:
                        n = _push(stack_f, stack_i, n, ELECTRON, slab, T_e, x, y, z, ex, ey, ez)
                    else:
                        _deposit(image, ledger, layer, x, y, T_e, half_x, half_y, pitch)
                    T, ux, uy, uz = k_out, vx, vy, vz
                    continue
                # photoelectric absorption
                j = _pick_element(cumulative[m, tb.CUM_PHOTO], int(scalars[m, 5]), lnT, state)
                binding = element_data[m, j, 4] if element_data[m, j, 4] < T else element_data[m, j, 5]
                if binding >= T:
                    binding = 0.0
                _deposit(image, ledger, layer, x, y, binding, half_x, half_y, pitch)
                T_e = T - binding
                if T_e >= e_track:
                    n = _push(stack_f, stack_i, n, ELECTRON, slab, T_e, x, y, z, ux, uy, uz)
                else:
                    _deposit(image, ledger, layer, x, y, T_e, half_x, half_y, pitch)
                break
            # --- electron or positron: one condensed step ---
            positron = kind == POSITRON
            if e_track > T:
                alive = False
            else:
                lnT = math.log(T)
                range_row = values[m, tb.RANGE_P if positron else tb.RANGE_E]
                residual = interpolate(range_row, lnT)
                if e_save > T and residual < _safety(x, y, z, z_front[slab], z_back[slab], half_width):
                    alive = False
                else:
                    steps += 1
                    T, x, y, z, ux, uy, uz, slab, alive, n = _charged_step(
                        state, positron, T, lnT, residual, x, y, z, ux, uy, uz, slab, m, layer,
                        z_front, z_back, half_width, half_x, half_y, pitch, values, cumulative, element_data,
                        scalars, step_fraction, final_range, straggling, e_track, e_save, soft_fraction, image, ledger,
                        stack_f, stack_i, n)
                    if slab < 0 or slab >= n_slabs:
                        break
                    if alive:
                        continue
                    if T < 0.0:  # annihilated in flight: nothing left to stop
                        break
            # the particle stops here: deposit the rest; a positron annihilates at rest
            layer = slab_layer[slab]
            _deposit(image, ledger, layer, x, y, T, half_x, half_y, pitch)
            if positron:
                vz = isotropic_cos(state)
                phi = 2.0 * math.pi * rand(state)
                st = math.sqrt(max(0.0, 1.0 - vz * vz))
                vx, vy = st * math.cos(phi), st * math.sin(phi)
                n = _push(stack_f, stack_i, n, GAMMA, slab, ME, x, y, z, vx, vy, vz)
                n = _push(stack_f, stack_i, n, GAMMA, slab, ME, x, y, z, -vx, -vy, -vz)
            break
    return steps


@njit(cache=True)
def _charged_step(state, positron, T, lnT, residual, x, y, z, ux, uy, uz, slab, m, layer,
                  z_front, z_back, half_width, half_x, half_y, pitch, values, cumulative, element_data,
                  scalars, step_fraction, final_range, straggling, e_track, e_save, soft_fraction, image, ledger,
                  stack_f, stack_i, n):
    """One step of an e-/e+; returns the updated state. ``T < 0`` on return means annihilated in flight;
    ``slab`` outside [0, n_slabs) or ``alive`` False with T >= 0 means it left or stopped.

    ``soft_fraction`` > 0: elastic scattering in the mixed scheme (hard collisions one by one along the step, soft
    ones grouped at random hinges on segments of at most that share of the slab's thickness, :func:`_move_mixed`);
    0: a Highland-Gaussian deflection per step."""
    sig_discrete = _discrete_cross_section(values, m, positron, lnT)
    s_discrete = -math.log(rand(state)) / sig_discrete if sig_discrete > 0.0 else _INF
    s_continuous = residual if residual <= final_range else max(step_fraction * residual, final_range)
    if s_continuous > residual:
        s_continuous = residual
    s = min(s_discrete, s_continuous)
    if soft_fraction > 0.0:
        T_new, x, y, z, ux, uy, uz, at_boundary, which = _move_mixed(
            state, positron, T, lnT, residual, s, x, y, z, ux, uy, uz, slab, m, layer, z_front, z_back,
            half_width, half_x, half_y, pitch, values, cumulative, element_data, scalars, straggling, e_save,
            soft_fraction, image, ledger)
    else:
        T_new, x, y, z, ux, uy, uz, at_boundary, which = _move_highland(
            state, positron, T, lnT, residual, s, x, y, z, ux, uy, uz, slab, m, layer, z_front, z_back,
            half_width, half_x, half_y, pitch, values, scalars, straggling, image, ledger)
    if at_boundary:
        if which == 2:
            ledger[LEAK_SIDE] += T_new + (2.0 * ME if positron else 0.0)
            return T_new, x, y, z, ux, uy, uz, -1, False, n
        slab += which
        if slab < 0 or slab >= z_front.shape[0]:
            ledger[LEAK_FRONT if slab < 0 else LEAK_BACK] += T_new + (2.0 * ME if positron else 0.0)
            return T_new, x, y, z, ux, uy, uz, slab, False, n
        # numerical safety: sit exactly on the entry plane of the new slab
        z = z_front[slab] if which > 0 else z_back[slab]
        return T_new, x, y, z, ux, uy, uz, slab, T_new > e_track, n
    if T_new <= e_track or s_discrete > s_continuous:
        return T_new, x, y, z, ux, uy, uz, slab, T_new > e_track, n
    return _discrete_interaction(state, positron, T_new, x, y, z, ux, uy, uz, slab, m, values, cumulative,
                                 element_data, scalars, stack_f, stack_i, n)


@njit(cache=True)
def _discrete_cross_section(values, m, positron, lnT):
    """Macroscopic cross-section (1/mm) of the discrete interactions that end a step of an e-/e+ at ln T (hard
    elastic collisions happen inside the step, :func:`_move_mixed`)."""
    sigma = interpolate(values[m, tb.SIG_BHABHA if positron else tb.SIG_MOLLER], lnT)
    sigma += interpolate(values[m, tb.SIG_BREMS], lnT)
    if positron:
        sigma += interpolate(values[m, tb.SIG_ANNIH], lnT)
    return sigma


@njit(cache=True)
def _continuous_loss(state, positron, T, lnT, residual, s, m, layer, values, scalars, straggling):
    """Energy (MeV) lost continuously over a path of ``s`` mm, straggled in sensors."""
    range_row = values[m, tb.RANGE_P if positron else tb.RANGE_E]
    if s >= residual:
        loss = T
    elif s < 0.01 * residual:
        loss = s * interpolate(values[m, tb.DEDX_P if positron else tb.DEDX_E], lnT)
    else:
        loss = T - energy_at_range(range_row, residual - s)
    if straggling and layer >= 0 and loss < T:
        dedx_total = interpolate(values[m, tb.DEDX_P if positron else tb.DEDX_E], lnT)
        collision = loss * interpolate(values[m, tb.DEDX_COL_P if positron else tb.DEDX_COL_E], lnT) / dedx_total
        # largest energy transfer below the cut: half the energy for e- (identical particles), all of it for e+
        largest = min(scalars[m, 1], T if positron else 0.5 * T)
        loss += straggled_loss(state, collision, T, scalars[m, 3], largest, scalars[m, 6], scalars[m, 7],
                               scalars[m, 8]) - collision
        loss = min(max(loss, 0.0), T)
    return loss


@njit(cache=True)
def _move_highland(state, positron, T, lnT, residual, s, x, y, z, ux, uy, uz, slab, m, layer, z_front, z_back,
                   half_width, half_x, half_y, pitch, values, scalars, straggling, image, ledger):
    """Straight step of ``s`` (stopped at the slab boundary), loss deposited at its middle, then a Gaussian
    deflection with the Highland width and the correlated lateral displacement (inside the slab only)."""
    dist, which = _boundary_distance(x, y, z, ux, uy, uz, z_front[slab], z_back[slab], half_width)
    at_boundary = dist <= s
    if at_boundary:
        s = dist
    loss = _continuous_loss(state, positron, T, lnT, residual, s, m, layer, values, scalars, straggling)
    T_mid = T - 0.5 * loss
    _deposit(image, ledger, layer, x + 0.5 * s * ux, y + 0.5 * s * uy, loss, half_x, half_y, pitch)
    if T_mid > 0.0 and s > 0.0:
        theta0 = highland_theta0(T_mid, s, scalars[m, 0])
        tx, ty, dx, dy = scatter(state, theta0, s)
        x_new, y_new, z_new = x + s * ux, y + s * uy, z + s * uz
        if not at_boundary:
            px, py, pz = rotate(ux, uy, uz, dx, dy, 0.0)
            if (z_front[slab] < z_new + pz < z_back[slab] and abs(x_new + px) < half_width
                    and abs(y_new + py) < half_width):
                x_new, y_new, z_new = x_new + px, y_new + py, z_new + pz
        x, y, z = x_new, y_new, z_new
        theta = math.sqrt(tx * tx + ty * ty)
        cos_theta = math.cos(theta) if theta < math.pi else isotropic_cos(state)
        ux, uy, uz = deflect(state, ux, uy, uz, cos_theta)
    else:
        x, y, z = x + s * ux, y + s * uy, z + s * uz
    return T - loss, x, y, z, ux, uy, uz, at_boundary, which


@njit(cache=True)
def _elastic_at(values, element_data, m, T):
    """Mixed-scheme elastic quantities at T (MeV): hard cross-section (1/mm), soft inverse transport mean free
    path (1/mm), mu_c, and the screening parameter of the material's first element."""
    lnT = math.log(T)
    return (interpolate(values[m, tb.SIG_EL_HARD], lnT), interpolate(values[m, tb.INV_L1_SOFT], lnT),
            interpolate(values[m, tb.MU_CUT], lnT), screening_parameter(element_data[m, 0, 0], T))


@njit(cache=True)
def _move_mixed(state, positron, T, lnT, residual, s, x, y, z, ux, uy, uz, slab, m, layer, z_front, z_back,
                half_width, half_x, half_y, pitch, values, cumulative, element_data, scalars, straggling, e_save,
                soft_fraction, image, ledger):
    """Path of ``s`` (mm of true path) in the mixed scheme, stopped where it meets the slab boundary.

    Hard elastic collisions happen one by one along the path, at exponential distances from the hard
    cross-section at the energy reached (CSDA along the path, looked up again every 2 % of energy). Each straight
    segment between two of them (within the safety distance, or at most ``soft_fraction`` of the slab's thickness
    long) carries the grouped soft collisions as one deflection at a uniformly random point of the segment (the
    random hinge, which correlates lateral displacement with deflection). Hard collisions change neither the
    energy nor the tables, so they are done here without ending the step. The continuous loss is taken over the
    true path travelled and deposited at its centroid; between segments a particle below the range-rejection
    energy that can no longer reach the slab's surface stops.
    """
    dedx_row = values[m, tb.DEDX_P if positron else tb.DEDX_E]
    n_elements = int(scalars[m, 5])
    T_here = T
    sig_hard, inv_l1_soft, mu_c, A_single = _elastic_at(values, element_data, m, T_here)
    refresh_at = _REFRESH * T / interpolate(dedx_row, lnT)  # path over which the energy falls by that share
    # no boundary within the step's safety: a path that stays shorter cannot reach one, whatever its turns
    safety = _safety(x, y, z, z_front[slab], z_back[slab], half_width)
    # the longest soft segment near a surface (PENELOPE's s_max): a slab crossed in one long segment would be
    # deflected only when the hinge falls inside it, right on average but far too rarely for the angular
    # distribution of a thin layer
    longest = soft_fraction * (z_back[slab] - z_front[slab])
    travelled, cx, cy = 0.0, 0.0, 0.0
    at_boundary, stopped, which = False, False, 0
    while True:
        here = _safety(x, y, z, z_front[slab], z_back[slab], half_width)
        # range rejection (as at the start of a step) between segments: a slow particle whose residual range
        # no longer reaches the slab's surface stops here
        if travelled > 0.0 and e_save > T and residual - travelled < here:
            stopped = True
            break
        segment = s - travelled
        last, hard = True, False
        if sig_hard > 0.0:
            free = -math.log(rand(state)) / sig_hard
            if free < segment:
                segment, last, hard = free, False, True
        # ... except where it stays within the safety distance: then its hinge is inside the slab whatever happens
        limit = max(longest, here)
        if limit < segment:  # exponential free paths have no memory: the next segment samples afresh
            segment, last, hard = limit, False, False
        # straight to the hinge, soft deflection, straight on; either leg may meet the boundary
        hinge = rand(state) * segment
        for leg in range(2):
            length = hinge if leg == 0 else segment - hinge
            if travelled + length >= safety:
                dist, which = _boundary_distance(x, y, z, ux, uy, uz, z_front[slab], z_back[slab], half_width)
                if dist <= length:
                    length, at_boundary = dist, True
            cx += length * (x + 0.5 * length * ux)
            cy += length * (y + 0.5 * length * uy)
            x, y, z = x + length * ux, y + length * uy, z + length * uz
            travelled += length
            if at_boundary:
                break
            if leg == 0 and inv_l1_soft > 0.0:  # zero where every collision is hard (mu_c = 0)
                mean_mu = -0.5 * math.expm1(-segment * inv_l1_soft)
                ux, uy, uz = deflect(state, ux, uy, uz, 1.0 - 2.0 * sample_soft_mu(state, mean_mu))
        if at_boundary or last:
            break
        # the cross-sections follow the (CSDA) energy along the path, looked up again each time it has fallen by
        # about _REFRESH
        if travelled >= refresh_at and residual > travelled:
            T_here = energy_at_range(values[m, tb.RANGE_P if positron else tb.RANGE_E], residual - travelled)
            sig_hard, inv_l1_soft, mu_c, A_single = _elastic_at(values, element_data, m, T_here)
            refresh_at = travelled + _REFRESH * T_here / interpolate(dedx_row, math.log(T_here))
        if hard:
            A = A_single
            if n_elements > 1:
                j = _pick_element(cumulative[m, tb.CUM_ELASTIC], n_elements, math.log(T_here), state)
                A = screening_parameter(element_data[m, j, 0], T_here)
            mu = sample_hard_mu(state, A, mu_c)
            ux, uy, uz = deflect(state, ux, uy, uz, 1.0 - 2.0 * mu)
    loss = _continuous_loss(state, positron, T, lnT, residual, travelled, m, layer, values, scalars, straggling)
    if travelled > 0.0:
        _deposit(image, ledger, layer, cx / travelled, cy / travelled, loss, half_x, half_y, pitch)
    else:
        _deposit(image, ledger, layer, x, y, loss, half_x, half_y, pitch)
    if stopped:
        _deposit(image, ledger, layer, x, y, T - loss, half_x, half_y, pitch)
        loss = T
    return T - loss, x, y, z, ux, uy, uz, at_boundary, which


@njit(cache=True)
def _discrete_interaction(state, positron, T, x, y, z, ux, uy, uz, slab, m, values, cumulative, element_data,
                          scalars, stack_f, stack_i, n):
    """The discrete interaction at the end of a step, chosen by the cross-sections at the energy reached."""
    cut_e, cut_g = scalars[m, 1], scalars[m, 2]
    lnT = math.log(T)
    sig_ion = interpolate(values[m, tb.SIG_BHABHA if positron else tb.SIG_MOLLER], lnT)
    sig_brems = interpolate(values[m, tb.SIG_BREMS], lnT)
    sig_annih = interpolate(values[m, tb.SIG_ANNIH], lnT) if positron else 0.0
    sig_total = sig_ion + sig_brems + sig_annih
    if sig_total <= 0.0:  # fell below every threshold during the step: no interaction after all
        return T, x, y, z, ux, uy, uz, slab, True, n
    r = rand(state) * sig_total
    if positron and r >= sig_ion + sig_brems:
        return _annihilate_in_flight(state, T, x, y, z, ux, uy, uz, slab, stack_f, stack_i, n)
    if r < sig_ion:
        if (cut_e if positron else 2.0 * cut_e) >= T:
            return T, x, y, z, ux, uy, uz, slab, True, n
        T_delta = sample_delta_fraction(state, T, cut_e, positron) * T
        p = math.sqrt(T * (T + 2.0 * ME))
        p_delta = math.sqrt(T_delta * (T_delta + 2.0 * ME))
        cos_delta = min(1.0, T_delta * (T + 2.0 * ME) / (p_delta * p))
        vx, vy, vz = deflect(state, ux, uy, uz, cos_delta)
        n = _push(stack_f, stack_i, n, ELECTRON, slab, T_delta, x, y, z, vx, vy, vz)
        ux, uy, uz = normalise(p * ux - p_delta * vx, p * uy - p_delta * vy, p * uz - p_delta * vz)
        return T - T_delta, x, y, z, ux, uy, uz, slab, True, n
    # bremsstrahlung
    if cut_g >= T:
        return T, x, y, z, ux, uy, uz, slab, True, n
    j = _pick_element(cumulative[m, tb.CUM_BREMS], int(scalars[m, 5]), lnT, state)
    E = T + ME
    k = sample_photon_energy(state, element_data[m, j, 0], element_data[m, j, 2], element_data[m, j, 3]
                             if E > 50.0 else 0.0, E, cut_g, E * scalars[m, 4] / ME)
    k = min(k, T)
    vx, vy, vz = deflect(state, ux, uy, uz, math.cos(sample_photon_polar(state, E)))
    n = _push(stack_f, stack_i, n, GAMMA, slab, k, x, y, z, vx, vy, vz)
    return T - k, x, y, z, ux, uy, uz, slab, True, n


@njit(cache=True)
def _annihilate_in_flight(state, T, x, y, z, ux, uy, uz, slab, stack_f, stack_i, n):
    """Two photons share T + 2 m_e (Heitler); the positron is gone (returned T = -1)."""
    eps, cos_theta = sample_in_flight(state, T)
    total = T + 2.0 * ME
    k1 = eps * total
    vx, vy, vz = deflect(state, ux, uy, uz, cos_theta)
    p = math.sqrt(T * (T + 2.0 * ME))
    wx, wy, wz = normalise(p * ux - k1 * vx, p * uy - k1 * vy, p * uz - k1 * vz)
    n = _push(stack_f, stack_i, n, GAMMA, slab, k1, x, y, z, vx, vy, vz)
    n = _push(stack_f, stack_i, n, GAMMA, slab, total - k1, x, y, z, wx, wy, wz)
    return -1.0, x, y, z, ux, uy, uz, slab, False, n


# nogil: other threads run meanwhile, e.g. the worker's parent watchdog (fastshower.lifetime)
@njit(cache=True, nogil=True)
def simulate_batch(seeds, kinds, energies_MeV, x0, y0, directions, z_front, z_back, slab_mat, slab_layer,
                   half_width, half_x, half_y, pitch, values, cumulative, element_data, scalars, settings,
                   images, ledger, steps, stack_size):
    """Simulate showers one after the other, each from its own seed; images out in GeV, ledger in MeV, the
    number of steps of each shower in ``steps``. The particle stack starts at ``stack_size`` and is made twice
    as deep, and the shower run again, whenever a shower overflows it.

    Kept in this module so that numba's on-disk cache is invalidated together with the kernel it calls.
    """
    image = np.zeros(images.shape[1:])
    state = np.empty(4, dtype=np.uint64)
    stack_f = np.empty((stack_size, 7))
    stack_i = np.empty((stack_size, 2), dtype=np.int64)
    for i in range(seeds.shape[0]):
        while True:
            image[:] = 0.0
            ledger[i, :] = 0.0
            taken = simulate_shower(seeds[i], kinds[i], energies_MeV[i], x0[i], y0[i], directions[i, 0],
                                    directions[i, 1], directions[i, 2], z_front, z_back, slab_mat, slab_layer,
                                    half_width, half_x, half_y, pitch, values, cumulative, element_data, scalars,
                                    settings, image, ledger[i], state, stack_f, stack_i)
            if taken != STACK_OVERFLOW:
                break
            stack_f = np.empty((2 * stack_f.shape[0], 7))
            stack_i = np.empty((2 * stack_i.shape[0], 2), dtype=np.int64)
        steps[i] = taken
        images[i] = (image / 1000.0).astype(np.float32)


@njit(cache=True)
def decay_pi0s(seeds, energies_MeV, directions):
    """The two photons of each pi0 (kinetic energy MeV, direction (n, 3)) decayed as :func:`simulate_shower` decays a
    pi0 primary, each from its own seed: ``out[i, k]`` = (energy MeV, ux, uy, uz) of photon k of pi0 i. The event
    dispatcher (:mod:`fastshower.mc.events`) decays pi0s here, outside the transport, so that each photon can go to
    a fast model or to the transport."""
    out = np.empty((seeds.shape[0], 2, 4))
    state = np.empty(4, dtype=np.uint64)
    for i in range(seeds.shape[0]):
        rng_seed(state, seeds[i])
        k1, v1x, v1y, v1z, k2, v2x, v2y, v2z = _pi0_decay(state, energies_MeV[i], directions[i, 0], directions[i, 1],
                                                          directions[i, 2])
        out[i, 0, 0], out[i, 0, 1], out[i, 0, 2], out[i, 0, 3] = k1, v1x, v1y, v1z
        out[i, 1, 0], out[i, 1, 1], out[i, 1, 2], out[i, 1, 3] = k2, v2x, v2y, v2z
    return out


@njit(cache=True)
def transmit_primaries(seeds, energy, thickness, half_width, layer, values, cumulative, element_data, scalars,
                       settings, out):
    """Primary electrons of ``energy`` (MeV) at normal incidence through one slab (material 0) of ``thickness``
    mm; secondaries dropped. Row i of ``out``: exit side (TRANSMITTED, BACKSCATTERED, STOPPED), kinetic energy,
    direction. ``layer``: 0, the slab is a sensor (straggling sampled), or -1, passive; ``settings`` as for
    :func:`simulate_shower`. Here, not in fastshower.mc.foil, so that numba's on-disk cache is invalidated with
    the stepping it calls."""
    e_track, e_save = settings[0], settings[2]
    step_fraction, final_range, straggling = settings[3], settings[4], settings[5] > 0.5
    soft_fraction = settings[6]
    z_front, z_back = np.zeros(1), np.full(1, thickness)
    image, ledger = np.zeros((1, 1, 1)), np.zeros(N_LEDGER)
    # secondaries are dropped: a stack that takes none
    stack_f, stack_i = np.empty((0, 7)), np.empty((0, 2), dtype=np.int64)
    for i in range(seeds.shape[0]):
        state = rng_init(seeds[i])
        T, x, y, z, ux, uy, uz, slab, alive = energy, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0, True
        while alive and slab == 0 and e_track < T:
            lnT = math.log(T)
            residual = interpolate(values[0, tb.RANGE_E], lnT)
            T, x, y, z, ux, uy, uz, slab, alive, _ = _charged_step(
                state, False, T, lnT, residual, x, y, z, ux, uy, uz, slab, 0, layer, z_front, z_back, half_width,
                0.5, 0.5, 1.0, values, cumulative, element_data, scalars, step_fraction, final_range, straggling,
                e_track, e_save, soft_fraction, image, ledger, stack_f, stack_i, 0)
        out[i, 0] = TRANSMITTED if slab >= 1 else (BACKSCATTERED if slab < 0 else STOPPED)
        out[i, 1], out[i, 2], out[i, 3], out[i, 4] = max(T, 0.0), ux, uy, uz
