"""A conditional normalising flow on a latent space: the learned prior of the ``3dvae`` (CaloINN's idea).

Why: a VAE trained against a fixed N(0, 1) prior leaves its aggregate posterior non-Gaussian, with holes where
prior samples decode to showers unlike any in the training set. A flow ``z = g(u; E)``, ``u ~ N(0, 1)``, fitted to
the aggregate posterior by maximum likelihood (jointly with the VAE: the KL term's ``-log p(z | E)``), closes them.
CaloINN (Ernst, Favaro, Krause, Plehn, Shih, arXiv:2312.09290) learns its VAE's latent space with an invertible
network for the same reason. It costs ~2 MFLOP per shower at latent 200: a fraction of a percent of the
3DGAN decoder's 0.5 GFLOP.

The flow is a stack of affine coupling layers (RealNVP: Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803) with a
fixed permutation before each: half of the coordinates, given the other half and ln(E / 100 GeV), are scaled and
shifted. The permutations come in pairs, a random one and then its complement (the half held fixed is transformed
next), so that every coordinate is transformed at least once per pair: with independent random permutations a
coordinate of a 25-dimensional flow of 6 couplings is left untouched often enough (2 of 25 for seed 1) that the
flow cannot learn it. Flows saved before the pairs keep their own permutations (buffers of the state).
Scales are soft-clamped (``clamp * tanh(s / clamp)``) so that ``exp`` stays finite, and each
coupling's last layer starts at zero, so that an untrained flow is the identity and the prior starts as N(0, 1).
Both directions are exact and cost the same; everything exports to ONNX (linear, tanh, exp, gather).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class AffineCoupling(nn.Module):
    """One coupling: ``z_b = u_b * exp(s(u_a, c)) + t(u_a, c)``, ``z_a = u_a``, where ``a`` and ``b`` are the two
    halves of a fixed permutation of the coordinates (undone at the output, so that a zero coupling is the identity)."""

    def __init__(self, dim: int, cond_dim: int, hidden: int, clamp: float, permutation: torch.Tensor) -> None:
        super().__init__()
        self.n_a, self.n_b, self.clamp = dim // 2, dim - dim // 2, clamp
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))
        self.net = nn.Sequential(
            nn.Linear(self.n_a + cond_dim, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2 * self.n_b),
        )
        nn.init.zeros_(self.net[-1].weight)  # identity at initialisation
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, a: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(torch.cat([a, cond], dim=1)).chunk(2, dim=1)
        return self.clamp * torch.tanh(raw_s / self.clamp), t

    def forward(self, u: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Sampling direction ``u -> z``."""
        u = u[:, self.permutation]
        a, b = u[:, : self.n_a], u[:, self.n_a :]
        s, t = self._scale_shift(a, cond)
        return torch.cat([a, b * torch.exp(s) + t], dim=1)[:, self.inverse_permutation]

    def inverse(self, z: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density direction ``z -> u`` and ``ln |det du/dz|`` per row."""
        z = z[:, self.permutation]
        a, b = z[:, : self.n_a], z[:, self.n_a :]
        s, t = self._scale_shift(a, cond)
        u = torch.cat([a, (b - t) * torch.exp(-s)], dim=1)
        return u[:, self.inverse_permutation], -s.sum(dim=1)


class ConditionalFlow(nn.Module):
    """``z = g(u; c)`` for ``u ~ N(0, 1)`` in ``dim`` dimensions, conditioned on ``c`` of ``cond_dim`` numbers.

    ``forward(u, c)`` samples; ``inverse(z, c)`` gives ``(u, ln |det du/dz|)``; ``log_prob(z, c)`` the density
    of the prior at ``z`` (nats per row). The permutations come from a fixed seed (``permutation_seed``), so a
    model rebuilt from its options has the same flow before its weights are loaded."""

    def __init__(self, dim: int, cond_dim: int = 1, n_layers: int = 6, hidden: int = 256, clamp: float = 2.0,
                 permutation_seed: int = 0) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"ConditionalFlow: dim must be at least 2, got {dim}")
        g = torch.Generator().manual_seed(permutation_seed)
        self.dim = dim
        permutations: list[torch.Tensor] = []
        for k in range(n_layers):
            if k % 2 == 0:
                permutations.append(torch.randperm(dim, generator=g))
            else:  # the complement of the previous split: what it held fixed is transformed now (RealNVP's masks)
                previous = permutations[-1]
                permutations.append(torch.cat([previous[dim // 2 :], previous[: dim // 2]]))
        self.layers = nn.ModuleList(AffineCoupling(dim, cond_dim, hidden, clamp, p) for p in permutations)

    def forward(self, u: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Sampling direction: latent points ``z`` ``(B, dim)`` for Gaussian draws ``u`` ``(B, dim)``."""
        z = u
        for layer in self.layers:
            z = layer(z, cond)
        return z

    def inverse(self, z: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density direction: ``u`` and ``ln |det du/dz|`` (``(B,)``) for latent points ``z``."""
        log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        u = z
        for layer in reversed(self.layers):
            u, ld = layer.inverse(u, cond)
            log_det = log_det + ld
        return u, log_det

    def log_prob(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``ln p(z | c)`` per row: the standard normal density of ``u = g^-1(z)`` times the Jacobian."""
        u, log_det = self.inverse(z, cond)
        return standard_normal_log_prob(u) + log_det


class SinhArcsinhFlow(nn.Module):
    """A one-dimensional conditional flow ``z = g(u; c)``, ``u ~ N(0, 1)``: a stack of sinh-arcsinh transforms, each
    ``x -> mu + sigma * sinh((asinh(x) + eps) / delta)`` with ``(mu, ln sigma, eps, ln delta)`` given by a small
    network of ``c``. One such transform of a Gaussian is the sinh-arcsinh distribution (Jones and Pewsey,
    Biometrika 96 (2009) 761): location, scale, skewness (``eps``) and tail weight (``delta``), which is what a
    calorimeter's energy response needs -- a Gaussian core with a low tail where the shower leaks. Being monotone
    and smooth in ``u`` it has no region of the noise that maps far from the data, unlike a coupling flow's
    coordinate that depends on other coordinates. Both directions are analytic; it starts as the identity.
    ``forward``, ``inverse`` and ``log_prob`` are those of :class:`ConditionalFlow` for ``dim`` = 1."""

    def __init__(self, cond_dim: int = 1, n_layers: int = 2, hidden: int = 64, clamp: float = 5.0) -> None:
        super().__init__()
        self.n_layers, self.clamp, self.dim = n_layers, clamp, 1
        self.net = nn.Sequential(
            nn.Linear(cond_dim, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 4 * n_layers),
        )
        nn.init.zeros_(self.net[-1].weight)  # identity at initialisation
        nn.init.zeros_(self.net[-1].bias)

    def _transforms(self, cond: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Per layer ``(mu, ln sigma, eps, ln delta)``, each ``(B, 1)``, the logs soft-clamped to +-clamp."""
        raw = self.net(cond).reshape(-1, self.n_layers, 4)
        soft = self.clamp * torch.tanh(raw / self.clamp)
        return [(raw[:, k, 0:1], soft[:, k, 1:2], raw[:, k, 2:3], soft[:, k, 3:4]) for k in range(self.n_layers)]

    def forward(self, u: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Sampling direction: ``z`` ``(B, 1)`` for Gaussian draws ``u`` ``(B, 1)``."""
        x = u
        for mu, log_sigma, eps, log_delta in self._transforms(cond):
            x = mu + torch.exp(log_sigma) * torch.sinh((torch.asinh(x) + eps) * torch.exp(-log_delta))
        return x

    def inverse(self, z: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density direction: ``u`` ``(B, 1)`` and ``ln |det du/dz|`` ``(B,)`` for points ``z`` ``(B, 1)``."""
        log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        x = z
        for mu, log_sigma, eps, log_delta in reversed(self._transforms(cond)):
            x = (x - mu) * torch.exp(-log_sigma)
            inner = torch.exp(log_delta) * torch.asinh(x) - eps
            log_det = log_det + (log_delta - log_sigma + _log_cosh(inner) - 0.5 * torch.log1p(x.square()))[:, 0]
            x = torch.sinh(inner)
        return x, log_det

    def log_prob(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``ln p(z | c)`` per row (nats)."""
        u, log_det = self.inverse(z, cond)
        return standard_normal_log_prob(u) + log_det


def standard_normal_log_prob(u: torch.Tensor) -> torch.Tensor:
    """``ln N(u; 0, 1)`` per row (nats) of points ``u`` ``(B, dim)``: the flows' base density."""
    return -0.5 * (u.square().sum(dim=1) + u.shape[1] * math.log(2.0 * math.pi))


def _log_cosh(x: torch.Tensor) -> torch.Tensor:
    """``ln cosh(x)`` without overflow: ``|x| + ln(1 + exp(-2|x|)) - ln 2``."""
    a = x.abs()
    return a + torch.log1p(torch.exp(-2.0 * a)) - math.log(2.0)
