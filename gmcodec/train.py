"""Rate-distortion training of the GroupedMixer codec: resumable, time-budgeted.

``python -m gmcodec.train --data pack/train --ckpt checkpoints/run --minutes 30``

Loss per image: ``lambda * 255^2 * MSE + bpp`` with lambda drawn per image from the config's
lambdas (variable rate through gain vectors), weighted per lambda by ``LambdaWeights``
(``--lambda-weighting relative``, the default; ``uniform`` weighs every image alike). bf16
autocast on CUDA and on CPUs with bf16 units, fused AdamW, gradient clipping, LR warm-up then
cosine decay over the time budget, optionally a ``torch.compile``'d forward (``--compile``) and a
running average of the weights (``--average``, ``gmcodec.averaging``) and g_s trained on the
mean-centred y_hat the decoder sees (``--centred``, ``GMModel.forward``). Checkpoints (with
optimizer state) are written every ``--ckpt-every`` minutes and at the end.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from . import checkpoint
from .averaging import WeightAverage
from .config import ModelConfig
from .data import CropSampler, load_images
from .device import gradient_attention, pick_device, use_bf16
from .evaluate import evaluate_rd
from .model import GMModel
from .parallel import Group, launch

Forward = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
"""The model's forward ``(x, q) -> {"x_hat", "bits_y", "bits_z", ...}``, possibly compiled."""

GRAD_CLIP = 1.0
"""Default max global gradient norm (``--clip``); also what ``seconds_per_step`` times."""
RANK_SEED = 1_000_003
"""Seed offset between ranks of ``--procs``: each rank draws its own crops, lambdas and noise."""
EMA_DECAY = 0.98
"""Decay of ``LambdaWeights``' running mean loss, per image drawn at that lambda."""


@dataclass
class LambdaWeights:
    """Per-lambda loss weights that count each lambda by its relative improvement.

    With one weight for all, the shared parameters follow the lambdas whose loss
    L = lambda * 255^2 * MSE + bpp is largest: the high rates (round cpu16w's running means
    ended at 0.75 for q = 0 and 9.0 for q = 7, ``lambda_ema`` in its checkpoint). BD-rate
    averages over log-rate, where a bit saved at 0.25 bpp is worth ~7 at 1.75 bpp.
    ``relative`` weighting divides each image's L by a running mean L_k of the loss at its
    lambda k and multiplies by the mean of the L_k, so the overall scale (what the LR and the
    gradient clip act on) stays; the gradient then follows d L / L_k ~ d log L_k.
    Lambdas not yet seen weigh 1. ``ema`` (L_k or None) travels in the checkpoint's meta.
    """

    ema: list[float | None]
    decay: float = EMA_DECAY

    def table(self) -> torch.Tensor:
        """The weight of each lambda index, [K]."""
        known = [v for v in self.ema if v is not None]
        if not known:
            return torch.ones(len(self.ema))
        mean = sum(known) / len(known)
        return torch.tensor([1.0 if v is None else mean / v for v in self.ema])

    def update(self, idx: torch.Tensor, losses: torch.Tensor) -> None:
        """Fold the unweighted per-image losses (lambda indexes idx) into the running means."""
        for k, v in zip(idx.tolist(), losses.tolist(), strict=True):
            old = self.ema[k]
            self.ema[k] = v if old is None else self.decay * old + (1 - self.decay) * v


def run_arguments(p: argparse.ArgumentParser) -> None:
    """The options every resumable training stage takes: data, checkpoint, budget, start."""
    p.add_argument("--data", required=True, help="folder of training images (pack or corpus)")
    p.add_argument("--ckpt", required=True, help="checkpoint folder (created / resumed)")
    p.add_argument("--minutes", type=float, required=True, help="training time budget")
    p.add_argument("--init", help="start from exported weights (.pt) (first run only)")
    p.add_argument("--ckpt-every", type=float, default=5.0, help="minutes between checkpoints")
    p.add_argument("--log", help="JSON log path (default: CKPT/log.json)")
    p.add_argument("--seed", type=int, default=0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gmcodec.train", description=__doc__.splitlines()[0])
    run_arguments(p)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=300, help="LR warm-up steps")
    p.add_argument(
        "--decay-from", type=float, default=0.5, help="budget fraction where decay starts"
    )
    p.add_argument("--clip", type=float, default=GRAD_CLIP)
    p.add_argument(
        "--lambda-weighting",
        choices=["uniform", "relative"],
        default="relative",
        help="per-lambda loss weights: relative (LambdaWeights; used since round cpu16w, the "
        "default since session 17) or one for all",
    )
    p.add_argument(
        "--average",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="also keep a running average of the weights, DECAY per step (e.g. 0.999; 0 = off); "
        "saved in the checkpoint, exported with scripts/export.py --averaged",
    )
    p.add_argument(
        "--centred",
        action="store_true",
        help="g_s learns from y_hat = mu_q + round(y_q - mu_q), what coder id 2 decodes, "
        "instead of round(y_q)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--procs",
        type=int,
        default=1,
        help="CPU only: train in N processes, gradients averaged (gmcodec.parallel)",
    )
    p.add_argument(
        "--bf16",
        nargs="?",
        const="on",
        default="auto",
        choices=["auto", "on", "off"],
        help="bf16 autocast; auto = on CUDA and on CPUs with amx_bf16/avx512_bf16 (bare: on)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training forward (inductor: needs a C++ compiler on CPU)",
    )
    p.add_argument("--entropy", choices=["mixer", "meanscale"], default="mixer")
    p.add_argument("--spatial-groups", type=int, default=4)
    p.add_argument("--slices", default="16,16,32,64,64")
    p.add_argument("--eval", help="folder of evaluation images (e.g. Kodak) for the final RD")
    return p.parse_args(argv)


def resume(ckpt: str | Path) -> tuple[GMModel, dict, dict] | None:
    """(model, meta, flat optimizer state) of a checkpoint folder, or None if it has none."""
    if not (Path(ckpt) / "meta.json").exists():
        return None
    meta, state, flat_opt = checkpoint.load(ckpt)
    model = GMModel(ModelConfig.from_dict(meta["config"]))
    model.load_state_dict(state)
    return model, meta, flat_opt


def load_any(path: str | Path) -> GMModel:
    """A model in eval mode from exported weights (.pt) or a checkpoint folder (scripts)."""
    from .zoo import model_from_file

    if Path(path).is_dir():
        if (resumed := resume(path)) is None:
            raise FileNotFoundError(f"no checkpoint (meta.json) in {path}")
        return resumed[0].eval()
    return model_from_file(path)[0].eval()


def build(args: argparse.Namespace, device: torch.device) -> tuple[GMModel, dict, dict | None]:
    """Model (from the checkpoint, from --init, or fresh), checkpoint meta, optimizer state."""
    if (resumed := resume(args.ckpt)) is not None:
        model, meta, flat_opt = resumed
        return model.to(device), meta, flat_opt
    slices = tuple(int(s) for s in args.slices.split(","))
    cfg = replace(
        ModelConfig(), entropy=args.entropy, spatial_groups=args.spatial_groups, slices=slices
    )
    meta = {"step": 0, "elapsed_s": 0.0, "runs": [], "config": json.loads(cfg.to_json())}
    if args.init:
        from .zoo import model_from_file

        model, info = model_from_file(args.init)
        meta.update(config=json.loads(model.cfg.to_json()), init=info)
        return model.to(device), meta, None
    return GMModel(cfg).to(device), meta, None


def warmup_cosine(lr: float, warmup: int, decay_from: float, step: int, frac: float) -> float:
    """Linear warm-up over ``warmup`` steps, flat until the budget fraction ``decay_from``,
    then cosine decay to 5% of ``lr`` at the end of the budget (``frac`` = 1)."""
    warm = min(1.0, (step + 1) / warmup)
    if frac <= decay_from:
        return lr * warm
    t = min(1.0, (frac - decay_from) / (1 - decay_from))
    return lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def lr_at(args: argparse.Namespace, step: int, frac: float) -> float:
    """Warm-up over ``--warmup`` steps, then cosine decay to 5% from ``--decay-from``."""
    return warmup_cosine(args.lr, args.warmup, args.decay_from, step, frac)


def rd_loss(
    model: GMModel,
    x: torch.Tensor,
    gen: torch.Generator,
    forward: Forward | None = None,
    weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """lambda * 255^2 * MSE + bpp, averaged over the batch, lambda drawn per image.

    ``forward`` stands in for ``model`` when called (``torch.compile(model)``, ``--compile``).
    ``weights`` [K] scales each image's loss by the weight of its lambda index. Also returns
    the lambda indexes ``idx`` and the unweighted per-image losses ``per_image`` (detached).
    """
    k = len(model.cfg.lambdas)
    idx = torch.randint(0, k, (x.shape[0],), generator=gen)
    lam = torch.tensor(model.cfg.lambdas)[idx].to(x.device)
    out = (model if forward is None else forward)(x, idx.float().to(x.device))
    pixels = x.shape[2] * x.shape[3]
    mse = (out["x_hat"].float() - x).square().mean((1, 2, 3))
    bpp = (out["bits_y"] + out["bits_z"]) / pixels
    per_image = lam * 255**2 * mse + bpp
    w = torch.ones_like(per_image) if weights is None else weights[idx].to(per_image)
    return {
        "loss": (w * per_image).mean(),
        "mse": mse.mean(),
        "bpp": bpp.mean(),
        "idx": idx,
        "per_image": per_image.detach(),
    }


def seconds_per_step(
    cfg: ModelConfig,
    batch: int,
    crop: int,
    steps: int,
    bf16: bool = False,
    compile: bool = False,
) -> float:
    """CPU seconds per train_step (random data, channels_last, AdamW), after warm-up.

    ``compile`` runs the forward through ``torch.compile`` as ``--compile`` does; the warm-up
    is then two steps, so that compilation is not timed.
    """
    model = GMModel(cfg).to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else None
    opt = adamw(model.parameters(), 1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, crop, crop).contiguous(memory_format=torch.channels_last)
    warmup, start = 2 if compile else 1, 0.0
    for i in range(warmup + steps):
        start = time.perf_counter() if i == warmup else start
        train_step(model, opt, x, gen, GRAD_CLIP, bf16, forward)
    return (time.perf_counter() - start) / steps


def train_step(
    model: GMModel,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    gen: torch.Generator,
    clip: float,
    bf16: bool,
    forward: Forward | None = None,
    weights: LambdaWeights | None = None,
    group: Group | None = None,
) -> dict[str, float]:
    """One optimizer step (bf16 autocast on x's device if ``bf16``); returns the float metrics.

    Attention uses ``gradient_attention``'s kernel for x's device (the math kernel on a CPU).
    With ``weights`` the loss is weighted per lambda and the running means are updated. With a
    ``group`` of several ranks the gradients, the metrics and the lambda statistics are those
    of all ranks' images together.
    """
    group = group or Group()
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16)
    with gradient_attention(x.device), autocast:
        m = rd_loss(model, x, gen, forward, None if weights is None else weights.table())
    idx, per_image = m.pop("idx"), m.pop("per_image")
    if weights is not None:
        weights.update(group.gather(idx), group.gather(per_image.float().cpu()))
    opt.zero_grad(set_to_none=True)
    m["loss"].backward()
    group.average_grads(model.parameters())
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    metrics = torch.stack([v.detach().float().cpu() for v in m.values()])
    group.average([metrics])
    return dict(zip(m, metrics.tolist(), strict=True))


def adamw(
    params: Iterable[torch.nn.Parameter], lr: float, flat_opt: dict | None = None
) -> torch.optim.AdamW:
    """AdamW without weight decay, stepped by PyTorch's fused kernel (CPU and CUDA).

    ``flat_opt`` (from ``checkpoint.load``) restores the moments, also from checkpoints that
    PyTorch's default AdamW (a loop over the parameters on a CPU) wrote before session 13.
    """
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    if flat_opt:
        checkpoint.restore_optimizer(opt, flat_opt)
    return opt


def run(args: argparse.Namespace, group: Group | None = None) -> dict:
    """Train for ``args.minutes`` and return the run record (also written to the log).

    ``group``: this process's rank in a ``--procs`` run (rank 0 alone writes files).
    """
    group = group or Group()
    torch.manual_seed(args.seed + RANK_SEED * group.rank)
    device = pick_device(args.device)
    model, meta, flat_opt = build(args, device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    group.share_weights(model)
    opt = adamw(model.parameters(), args.lr, flat_opt)
    seed = args.seed + meta["step"] + RANK_SEED * group.rank
    sampler = CropSampler(load_images(args.data, device, args.crop), args.crop, seed)
    gen = torch.Generator().manual_seed(seed)
    log_path = Path(args.log) if args.log else Path(args.ckpt) / "log.json"
    record = {
        "device": device_name(device),
        "procs": group.world,
        "minutes": args.minutes,
        "crop": args.crop,
        "batch": args.batch,
        "lr": args.lr,
        "bf16": use_bf16(device, args.bf16),
        "compile": args.compile,
        "lambda_weighting": args.lambda_weighting,
        "average": args.average,
        "centred": args.centred,
        "start_step": meta["step"],
        "history": [],
    }
    weights = lambda_weights(args, meta, len(model.cfg.lambdas))
    avg = weight_average(args, model) if group.leader else None
    loop(model, opt, sampler, gen, args, device, meta, record, log_path, weights, group, avg)
    group.check_in_sync(model)
    if not group.leader:
        return record
    if args.eval:
        record["eval"] = evaluate_rd(model.eval(), args.eval, device)
    meta["runs"] = [*meta.get("runs", []), {k: v for k, v in record.items() if k != "history"}]
    checkpoint.save(args.ckpt, model, opt, meta, averaged=avg.state_dict() if avg else None)
    write_log(log_path, record)
    return record


def lambda_weights(args: argparse.Namespace, meta: dict, k: int) -> LambdaWeights | None:
    """``--lambda-weighting relative``: weights resumed from (and kept in) ``meta``."""
    if args.lambda_weighting == "uniform":
        return None
    saved = meta.get("lambda_ema")
    weights = LambdaWeights(list(saved) if saved and len(saved) == k else [None] * k)
    meta["lambda_ema"] = weights.ema  # the same list: every checkpoint saves the current means
    return weights


def training_forward(model: GMModel, args: argparse.Namespace) -> Forward | None:
    """The forward ``rd_loss`` calls: compiled (``--compile``), centred (``--centred``)."""
    forward = torch.compile(model) if args.compile else None
    if args.centred:
        return functools.partial(model if forward is None else forward, centred=True)
    return forward


def weight_average(args: argparse.Namespace, model: GMModel) -> WeightAverage | None:
    """``--average``: the running average, resumed from the checkpoint when it has one."""
    if not args.average:
        return None
    return WeightAverage(model, args.average, checkpoint.load_averaged(args.ckpt))


def loop(
    model,
    opt,
    sampler,
    gen,
    args,
    device,
    meta,
    record,
    log_path,
    weights=None,
    group=None,
    avg=None,
) -> None:
    """The time-budgeted training loop with periodic checkpoints.

    Rank 0's clock decides the learning rate, the end and the checkpoints of every rank; rank 0
    alone keeps the weight average ``avg`` (every rank holds the same weights).
    """
    group = group or Group()
    budget, start, last_ckpt = args.minutes * 60, time.time(), time.time()
    step0, acc, n = meta["step"], {}, 0
    model.train()
    forward = training_forward(model, args)
    while True:
        elapsed = time.time() - start
        lr, go, due = group.leader_values(
            [
                lr_at(args, meta["step"] - step0, elapsed / budget),
                elapsed < budget,
                time.time() - last_ckpt > args.ckpt_every * 60,
            ]
        )
        if not go:
            break
        for param_group in opt.param_groups:
            param_group["lr"] = lr
        x = sampler.batch(args.batch)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        metrics = train_step(model, opt, x, gen, args.clip, record["bf16"], forward, weights, group)
        if avg is not None:
            avg.update()
        for k, v in metrics.items():
            acc[k] = acc.get(k, 0.0) + v
        meta["step"] += 1
        n += 1
        if n == 100 or due:
            entry = {"step": meta["step"], "elapsed_s": round(elapsed, 1), "lr": lr}
            record["history"].append({**entry, **{k: v / n for k, v in acc.items()}})
            if group.leader:
                print(json.dumps(record["history"][-1]), flush=True)
            acc, n = {}, 0
        if due:
            group.check_in_sync(model)
            last_ckpt = save(args, model, opt, meta, record, log_path, last_ckpt, group.leader, avg)
    close_record(meta, record, step0, start, last_ckpt)


def periodic_save(args, model, opt, meta, record, log_path: Path, last_ckpt: float) -> float:
    """Checkpoint and log once ``--ckpt-every`` minutes have passed; returns the last save time."""
    if time.time() - last_ckpt <= args.ckpt_every * 60:
        return last_ckpt
    return save(args, model, opt, meta, record, log_path, last_ckpt)


def save(
    args, model, opt, meta, record, log_path, last_ckpt: float, write: bool = True, avg=None
) -> float:
    """Checkpoint and log (if ``write``: rank 0 of a ``--procs`` run); returns the save time."""
    meta["elapsed_s"] = meta.get("elapsed_s", 0.0) + (time.time() - last_ckpt)
    if not write:
        return time.time()
    checkpoint.save(args.ckpt, model, opt, meta, averaged=avg.state_dict() if avg else None)
    write_log(log_path, record)
    return time.time()


def close_record(meta: dict, record: dict, step0: int, start: float, last_ckpt: float) -> None:
    """Final elapsed time, step count and wall time of a run."""
    meta["elapsed_s"] = meta.get("elapsed_s", 0.0) + (time.time() - last_ckpt)
    record["steps"] = meta["step"] - step0
    record["train_s"] = round(time.time() - start, 1)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def write_log(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.procs < 1:
        raise SystemExit(f"error: --procs must be >= 1, got {args.procs}")
    if not 0.0 <= args.average < 1.0:
        raise SystemExit(f"error: --average must be in [0, 1), got {args.average}")
    if args.procs == 1:
        run(args)
    elif pick_device(args.device).type != "cpu":
        raise SystemExit("error: --procs > 1 is for CPU training (use --device cpu)")
    else:
        launch(run, args.procs, args)


if __name__ == "__main__":
    main()
