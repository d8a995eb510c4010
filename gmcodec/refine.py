"""Encoder-side latent refinement: spend encode time to make files smaller (``gmx encode -e``).

The analysis transform gives y_q = g_a(x) * gain(q) in one amortized pass; that is not the
latent that minimizes the model's own rate-distortion loss for *this* image. Refinement runs
a few Adam steps on y_q itself, every network frozen:

    min_{y_q}  R(y_q) + lambda(q) * 255^2 * MSE(x, g_s(round(y_q) * inv_gain(q)))

R is the bits of y (the GroupedMixer given round(y_q) as context, psi from
z = round(h_a(y_q))) plus the bits of z, per pixel. Rounding passes gradients straight
through; the rate of y is differentiated at y_q + U(-1/2, 1/2), the training proxy. Every
iterate is scored by the true loss (rounded values, as the coder will spend them) and the best
one is kept, so refinement never returns a latent worse than g_a's by that measure. Where bf16
is fast (CUDA, CPUs with bf16 units: ``device.use_bf16``) the steps run under bf16 autocast and
the pick is confirmed against g_a's latent in full precision. Attention takes the kernel of
``device.gradient_attention`` (on a CPU the math kernel, faster in the backward pass). Only
the encoder changes: a refined file is an ordinary .gmx file that any decoder of the same
model reads.

The idea is the latent optimization of Campos et al. (2019) and Yang et al. (2020, "Improving
inference for neural image compression"), here in its plain form (no annealing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .constants import EFFORT_MAX, EFFORT_MIN
from .device import gradient_attention, use_bf16
from .model import GMModel, lambda_at, ste_round

EFFORT_STEPS = {1: 0, 2: 8, 3: 16, 4: 32, 5: 64}
"""Adam steps per effort level (1 = no refinement)."""
MAX_PIXELS = 2_000_000
"""Larger images are not refined: a step needs ~1.4 GB per megapixel (scripts/effort_sweep.py)."""
LEARNING_RATE = 0.01
"""Adam step on y_q, in quantization bins; decays linearly to 0 over the steps."""


class EffortWarning(UserWarning):
    """The requested effort could not be applied (the image is too large to refine)."""


@dataclass(frozen=True)
class Refinement:
    """What refinement did: the loss (bits per pixel + lambda 255^2 MSE) before and after."""

    steps: int
    loss_before: float
    loss_after: float


def steps_for(effort: int) -> int:
    """The number of refinement steps of an effort level."""
    if not EFFORT_MIN <= effort <= EFFORT_MAX:
        raise ValueError(f"effort must be in [{EFFORT_MIN}, {EFFORT_MAX}], got {effort}")
    return EFFORT_STEPS[effort]


def can_refine(height: int, width: int) -> bool:
    """Whether an image of this (padded) size is small enough to refine."""
    return height * width <= MAX_PIXELS


def _objective(
    model: GMModel,
    y: torch.Tensor,
    x: torch.Tensor,
    inv_gain: torch.Tensor,
    lam: float,
    gen: torch.Generator,
    centred: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to differentiate, true loss) for latents y of the image x [1, 3, h, w].

    The distortion counts the image's pixels only: x is not padded, g_s's output is cropped
    to it as the decoder crops it. ``centred``: the coder rounds around the mean (coder id
    2), so the distortion and the true bits use y_hat = mu + round(y - mu), mu from the
    teacher-forced pass on round(y) (the coder's mu sees the centred context instead).
    """
    y_hat, z, mu, sigma = model.context_params(y)
    if centred:
        mu = mu.detach()
        y_hat = mu + ste_round(y - mu)
    noise = torch.rand(y.shape, generator=gen, device=y.device, dtype=y.dtype) - 0.5
    z_hat = ste_round(z)
    bits_noisy, bits_z = model.bits(y + noise, z_hat, mu, sigma)
    bits_true, _ = model.bits(y_hat, z_hat, mu, sigma)
    h, w = x.shape[-2:]
    x_hat = model.g_s(y_hat * inv_gain)[..., :h, :w]
    mse = (x_hat.float() - x).square().mean()
    pixels = h * w
    distortion = lam * 255**2 * mse
    return (bits_noisy + bits_z).sum() / pixels + distortion, (
        (bits_true + bits_z).sum() / pixels + distortion
    ).detach()


def refine_latent(
    model: GMModel,
    x: torch.Tensor,
    y0: torch.Tensor,
    q: float,
    steps: int,
    seed: int = 0,
    bf16: bool | None = None,
    centred: bool = False,
) -> tuple[torch.Tensor, Refinement]:
    """The refined y_q of the image x [1, 3, h, w] in [0, 1] (unpadded), from y0 = g_a * gain.

    ``steps`` Adam steps (LEARNING_RATE, linear decay), scored at steps + 1 points; returns
    the best y_q by the true loss (y0 itself when no step improved it). ``bf16``: run the
    steps under bf16 autocast (None: where ``use_bf16`` says it is fast); the reported losses
    are then recomputed in full precision. ``centred``: score y_hat as the coder of bins centred
    on the mean rounds it (``_objective``). Deterministic for a given seed on a given device.
    """
    bf16 = use_bf16(y0.device) if bf16 is None else bf16
    _, inv_gain = model.gains(torch.tensor([q]))
    inv_gain = inv_gain.to(y0.device)
    lam = float(lambda_at(model.cfg.lambdas, torch.tensor(float(q))))
    gen = torch.Generator(device=y0.device).manual_seed(seed)
    y = y0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=LEARNING_RATE)
    best_loss, best_y, first = float("inf"), y0, float("nan")
    with torch.enable_grad(), gradient_attention(y0.device):
        for i in range(steps + 1):
            with torch.autocast(y0.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, true_loss = _objective(model, y, x, inv_gain, lam, gen, centred)
            if i == 0:
                first = float(true_loss)
            if float(true_loss) < best_loss:
                best_loss, best_y = float(true_loss), y.detach().clone()
            if i == steps:
                break
            for group in opt.param_groups:
                group["lr"] = LEARNING_RATE * (1 - i / steps)
            (grad,) = torch.autograd.grad(loss, [y])
            y.grad = grad
            opt.step()
    if bf16:
        best_y, first, best_loss = _confirm(model, x, y0, best_y, inv_gain, lam, gen, centred)
    return best_y, Refinement(steps, first, best_loss)


def _confirm(
    model: GMModel,
    x: torch.Tensor,
    y0: torch.Tensor,
    best_y: torch.Tensor,
    inv_gain: torch.Tensor,
    lam: float,
    gen: torch.Generator,
    centred: bool,
) -> tuple[torch.Tensor, float, float]:
    """(latent, loss of y0, its loss): the bf16 pick if its full-precision true loss beats y0's."""
    with torch.no_grad():
        first = float(_objective(model, y0, x, inv_gain, lam, gen, centred)[1])
        if best_y is y0:
            return y0, first, first
        after = float(_objective(model, best_y, x, inv_gain, lam, gen, centred)[1])
    return (best_y, first, after) if after < first else (y0, first, first)
