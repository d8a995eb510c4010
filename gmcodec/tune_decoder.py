"""Decoder fine-tuning: train g_s (and the inverse gains) with the encoder frozen.

``python -m gmcodec.tune_decoder --init weights/MODEL.pt --data pack/train
--ckpt checkpoints/dec1 --minutes 60``

With g_a, h_a, h_s, the factorized prior and the GroupedMixer frozen, every bitstream (and so
every rate) stays exactly what the starting model writes; only the reconstruction
x_hat = g_s(y_hat * g_inv(q)) changes. Because y = g_a(x) does not depend on q (the gain is a
per-channel scale, y_q = y * g(q), y_hat = round(y_q)), g_a runs once per training image and
its latents are kept in memory; a step is then one g_s forward/backward (run logs on the 2-core
CPU: 8 inputs of 256 px in ~1.8 s, against ~1.0 s for a full step on 8 x 128 px: about 2x
cheaper per pixel).

Loss (``--loss rd``, default): lambda(q) 255^2 MSE with q drawn uniformly over the quality
knob's range: with the rates fixed this is the training loss itself. ``--loss psnr`` (minus the
mean PSNR, every q weighted alike) was tried first and moved g_s's capacity from high to low q
(measured on 4 Kodak images after 666 steps: +0.10 dB at q = -2, -0.16 dB at q = 8).

The latents are cut from whole-image latents, so g_s gets ``--margin`` extra latent rows and
columns around each crop and the loss covers only the centre: a decoder trained on the hard
edges of cut latents learns to repair edges that never occur in a real image (measured without
the margin: -0.2 to -1.8 dB on whole Kodak images, docs/TRAINING.md).
Resumable (checkpoint folder with optimizer state), stops at ``--minutes``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch

from . import checkpoint
from .data import load_images
from .model import GMModel, lambda_at
from .train import (
    adamw,
    close_record,
    device_name,
    periodic_save,
    resume,
    run_arguments,
    warmup_cosine,
    write_log,
)
from .zoo import model_from_file

LATENT_STRIDE = 16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gmcodec.tune_decoder", description=__doc__.splitlines()[0])
    run_arguments(p)  # --minutes includes computing the latents
    p.add_argument("--crop", type=int, default=192, help="crop side in pixels, multiple of 16")
    p.add_argument("--margin", type=int, default=2, help="latent context around each crop")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--loss", choices=["rd", "psnr"], default="rd", help="see decoder_loss")
    p.add_argument("--q-range", default="-2,8", help="q interval sampled (quality 0..100)")
    p.add_argument("--clip", type=float, default=1.0)
    return p.parse_args(argv)


def load_start(args: argparse.Namespace) -> tuple[GMModel, dict, dict | None]:
    """The model, checkpoint meta and flat optimizer state (resume) or from ``--init``."""
    if (resumed := resume(args.ckpt)) is not None:
        return resumed
    if not args.init:
        raise SystemExit("error: no checkpoint in --ckpt and no --init weights to start from")
    model, info = model_from_file(args.init)
    meta = {"step": 0, "elapsed_s": 0.0, "runs": [], "config": json.loads(model.cfg.to_json())}
    meta["init"] = {"weights": str(args.init), **info, "stage": "decoder fine-tuning"}
    return model, meta, None


def decoder_parameters(model: GMModel) -> list[torch.nn.Parameter]:
    """The parameters the decoder alone uses: g_s and the inverse gains g_inv(q)."""
    return [*model.g_s.parameters(), model.log_inv_gain]


def freeze_encoder(model: GMModel) -> None:
    """Stop gradients everywhere but the decoder-only parameters."""
    keep = {id(p) for p in decoder_parameters(model)}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


@torch.no_grad()
def encode_latents(model: GMModel, images: list[torch.Tensor]) -> list[tuple]:
    """(x uint8 [3, H, W], y fp16 [M, H/16, W/16]) per image, H and W cut to multiples of 16."""
    pairs = []
    for img in images:
        h, w = (s - s % LATENT_STRIDE for s in img.shape[1:])
        x = img[:, :h, :w]
        y = model.g_a(x[None].float().div(255.0).contiguous(memory_format=torch.channels_last))
        pairs.append((x, y[0].float().contiguous().half()))
    return pairs


class LatentCropSampler:
    """Aligned random crops of (image, latent) pairs: a c x c latent crop with ``margin``
    latents of context on every side, and the 16c x 16c pixels of its centre."""

    def __init__(self, pairs: list[tuple], crop: int, seed: int, margin: int = 0) -> None:
        self.c, self.margin = crop // LATENT_STRIDE, margin
        side = crop + 2 * margin * LATENT_STRIDE
        self.pairs = [p for p in pairs if min(p[0].shape[1:]) >= side]
        if not self.pairs:
            raise ValueError(f"no training image has both sides >= {side}px")
        self.rng = random.Random(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x [size, 3, crop, crop] in [0, 1] and y [size, M, c + 2 margin, c + 2 margin]."""
        xs, ys = [], []
        span, s = self.c + 2 * self.margin, LATENT_STRIDE
        for _ in range(size):
            x, y = self.pairs[self.rng.randrange(len(self.pairs))]
            top = self.rng.randrange(y.shape[1] - span + 1)
            left = self.rng.randrange(y.shape[2] - span + 1)
            ys.append(y[:, top : top + span, left : left + span])
            t, u = (top + self.margin) * s, (left + self.margin) * s
            xs.append(x[:, t : t + self.c * s, u : u + self.c * s])
        return torch.stack(xs).float().div_(255.0), torch.stack(ys).float()


def reconstruction_mse(
    model: GMModel, x: torch.Tensor, y: torch.Tensor, q: torch.Tensor, margin: int = 0
) -> torch.Tensor:
    """MSE per image of g_s(round(y * g(q)) * g_inv(q)) against x, measured on the centre of
    x_hat (``margin`` latents = 16 * margin pixels cut from every side)."""
    gain, inv_gain = model.gains(q)
    y_hat = torch.round(y * gain.detach())
    x_hat = model.g_s((y_hat * inv_gain).contiguous(memory_format=torch.channels_last))
    if margin:
        cut = margin * LATENT_STRIDE
        x_hat = x_hat[..., cut:-cut, cut:-cut]
    return (x_hat.float() - x).square().mean((1, 2, 3)).clamp_min(1e-10)


def decoder_loss(mse: torch.Tensor, q: torch.Tensor, kind: str, lambdas) -> torch.Tensor:
    """``"rd"``: the distortion term of the training loss, lambda(q) 255^2 MSE (rates are fixed,
    so this is the whole rate-distortion loss up to a constant); ``"psnr"``: minus mean PSNR."""
    if kind == "psnr":
        return (10.0 / math.log(10.0)) * torch.log(mse).mean()
    return (lambda_at(lambdas, q) * 255**2 * mse).mean()


def mean_psnr(mse: torch.Tensor) -> float:
    return float((-10.0 * torch.log10(mse.detach())).mean())


def lr_at(args: argparse.Namespace, step: int, frac: float) -> float:
    """Warm-up, then cosine decay to 5% over the whole time budget (the trainer's schedule
    with its decay starting at once)."""
    return warmup_cosine(args.lr, args.warmup, 0.0, step, frac)


def run(args: argparse.Namespace) -> dict:
    """Fine-tune the decoder for ``args.minutes``; returns the run record (also logged)."""
    if args.crop % LATENT_STRIDE:
        raise SystemExit(f"error: --crop must be a multiple of {LATENT_STRIDE}")
    torch.manual_seed(args.seed)
    start = time.time()
    model, meta, flat_opt = load_start(args)
    model = model.to(memory_format=torch.channels_last).eval()
    freeze_encoder(model)
    opt = adamw(decoder_parameters(model), args.lr, flat_opt)
    side = args.crop + 2 * args.margin * LATENT_STRIDE
    pairs = encode_latents(model, load_images(args.data, torch.device("cpu"), side))
    sampler = LatentCropSampler(pairs, args.crop, args.seed + meta["step"], args.margin)
    record = {
        "stage": "decoder fine-tuning",
        "device": device_name(torch.device("cpu")),
        "minutes": args.minutes,
        "crop": args.crop,
        "batch": args.batch,
        "margin": args.margin,
        "loss": args.loss,
        "lr": args.lr,
        "start_step": meta["step"],
        "latents_s": round(time.time() - start, 1),
        "history": [],
    }
    log_path = Path(args.log) if args.log else Path(args.ckpt) / "log.json"
    loop(model, opt, sampler, args, meta, record, log_path, start)
    meta["runs"] = [*meta.get("runs", []), {k: v for k, v in record.items() if k != "history"}]
    checkpoint.save(args.ckpt, model, opt, meta)
    write_log(log_path, record)
    return record


def loop(model, opt, sampler, args, meta, record, log_path, start: float) -> None:
    """The time-budgeted loop: g_s steps, a log line every 100, periodic checkpoints."""
    budget, last_ckpt, step0 = args.minutes * 60, time.time(), meta["step"]
    lo, hi = (float(v) for v in args.q_range.split(","))
    gen = torch.Generator().manual_seed(args.seed + step0)
    acc, n = 0.0, 0
    g_s = model.g_s.train()
    while (elapsed := time.time() - start) < budget:
        for group in opt.param_groups:
            group["lr"] = lr_at(args, meta["step"] - step0, elapsed / budget)
        x, y = sampler.batch(args.batch)
        q = lo + (hi - lo) * torch.rand(args.batch, generator=gen)
        x = x.contiguous(memory_format=torch.channels_last)
        mse = reconstruction_mse(model, x, y, q, args.margin)
        loss = decoder_loss(mse, q, args.loss, model.cfg.lambdas)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(g_s.parameters(), args.clip)
        opt.step()
        meta["step"] += 1
        acc, n = acc + mean_psnr(mse), n + 1
        if n == 100:
            entry = {"step": meta["step"], "elapsed_s": round(elapsed, 1), "psnr": acc / n}
            record["history"].append({**entry, "lr": opt.param_groups[0]["lr"]})
            print(json.dumps(record["history"][-1]), flush=True)
            acc, n = 0.0, 0
        last_ckpt = periodic_save(args, model, opt, meta, record, log_path, last_ckpt)
    close_record(meta, record, step0, start, last_ckpt)


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
