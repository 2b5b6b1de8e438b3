"""Likelihoods of the flux labels (surrogate.targets) for training: Gaussian for exact labels, interval-censored
for labels whose interval contains zero (torch, elementwise, differentiable).
"""

from __future__ import annotations

import math

import torch


def gaussian_nll(y: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Elementwise Gaussian negative log likelihood, 0.5 [ln(2 pi var) + (y - mu)^2 / var]."""
    return 0.5 * (torch.log(2 * math.pi * var) + (y - mu) ** 2 / var)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """ln(1 - e^x) for x < 0, accurate at both ends."""
    x = torch.clamp(x, max=-1e-12)
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_prob_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ln(Phi(b) - Phi(a)) for standard-normal bounds a < b, stable in both tails."""
    lower_tail = a > 0  # both bounds far right: use the mirror image Phi(-a) - Phi(-b)
    hi = torch.where(lower_tail, -a, b)
    lo = torch.where(lower_tail, -b, a)
    lh, ll = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return lh + _log1mexp(ll - lh)


def censored_nll(lo: torch.Tensor, hi: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """-ln P(lo <= y <= hi) for y ~ N(mu, var), elementwise: the likelihood of an interval-censored label.

    ~0 (and flat) while the prediction sits inside the bounds with a small spread; grows like the Gaussian
    NLL once mu leaves them, so a censored value pulls on the model only when the prediction violates it.
    """
    sd = torch.sqrt(var)
    return -log_prob_between((lo - mu) / sd, (hi - mu) / sd)
