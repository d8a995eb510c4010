"""Fuzz the .gmx decoder with damaged and hostile files; print a JSON summary.

Usage::

    nice -n 5 python scripts/fuzz.py --cases 5000 --seed 1 --time-limit 300

Case ``i`` is a pure function of (seed, i): a mutation of one of a few small seed files
encoded with the shipped model. The kinds of mutation:

    damage (the CRCs are left as they are, so the container must notice):
      truncate, flip1, flipN, overwrite, insert_delete, random, empty, absurd_head
    behind the container (chunk CRCs recomputed, so only the decoder's checks are left):
      chunk_fixed, words_fixed, structure, splice, size_lie

Each case goes through ``container.parse``, ``gmx info``'s ``describe``/``format_info`` and
``Codec.decode``. Outcomes: ``refused`` (ContainerError, DecodeError or ValueError with a one-line
message), ``decoded_same`` (the seed's pixels, mode and size), ``decoded_other_metadata`` (same
pixels, other ICC/EXIF bytes), ``decoded_header_lie`` (other pixels from exactly the seed's
symbols: a header field such as the quality or the size was changed and its CRC recomputed),
``decoded_wrong`` (other symbols reached the synthesis: the decoder lied), ``crash`` (any other
exception, or a multi-line message), ``hang`` (no answer within --hang-s) and ``died`` (the
worker process ended, e.g. by a signal). The exit status is 1 if any case crashed, hung, died
or decoded wrong.

The cases run in a worker process that the parent restarts after a hang or a death, so one bad
case cannot stop the run; the parent reads one JSON line per case.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import random
import resource
import select
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "kodim23.png"

PREAMBLE = 10  # signature (8) + major + minor
DAMAGE_KINDS = (
    "truncate",
    "flip1",
    "flipN",
    "overwrite",
    "insert_delete",
    "random",
    "empty",
    "absurd_head",
)
BEHIND_KINDS = ("chunk_fixed", "words_fixed", "structure", "splice", "size_lie")
KINDS = DAMAGE_KINDS + BEHIND_KINDS
_WEIGHTS = {
    "truncate": 10,
    "flip1": 14,
    "flipN": 10,
    "overwrite": 8,
    "insert_delete": 5,
    "random": 6,
    "empty": 1,
    "absurd_head": 8,
    "chunk_fixed": 10,
    "words_fixed": 12,
    "structure": 7,
    "splice": 6,
    "size_lie": 3,
}
ABSURD_SIZES = (0, 65536, 100_000, 1 << 20, 1 << 31, 0xFFFF_FFFF)
"""Image sides that the default Limits refuse (0 or over 65535)."""
LIE_SIZES = (1, 63, 4096, 16384)
"""Image sides (with a matching tile) inside the default limits, for ``size_lie``."""

BAD_OUTCOMES = ("crash", "hang", "died", "decoded_wrong")
Chunk = tuple[bytes, bytes]  # (type, data)


# --------------------------------------------------------------------------- chunk surgery


def split_chunks(data: bytes) -> list[Chunk]:
    """The (type, data) chunks of a well-formed file (the seeds), CRCs dropped."""
    chunks, pos = [], PREAMBLE
    while pos < len(data):
        length, kind = struct.unpack_from("<I4s", data, pos)
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def join_chunks(preamble: bytes, chunks: list[Chunk]) -> bytes:
    """A file from chunks, each framed with a correct CRC."""
    out = [preamble]
    for kind, body in chunks:
        crc = zlib.crc32(body, zlib.crc32(kind))
        out.append(struct.pack("<I4s", len(body), kind) + body + struct.pack("<I", crc))
    return b"".join(out)


def _with_chunk(seed: bytes, kind: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    """seed with the first chunk of type kind replaced by edit(its data), CRC fixed."""
    chunks = split_chunks(seed)
    i = next(n for n, (k, _) in enumerate(chunks) if k == kind)
    chunks[i] = (kind, edit(chunks[i][1]))
    return join_chunks(seed[:PREAMBLE], chunks)


def _scramble(rng: random.Random, body: bytes, start: int = 0, count: int = 0) -> bytes:
    """body with 1..4 (or count) bytes from start on XOR-ed with nonzero values."""
    if len(body) <= start:
        return body + bytes([rng.randrange(256)])
    out = bytearray(body)
    for _ in range(count or rng.randint(1, 4)):
        out[rng.randrange(start, len(out))] ^= rng.randrange(1, 256)
    return bytes(out)


# --------------------------------------------------------------------------- mutators
# Each takes (rng, seed bytes, all seeds) and returns (file bytes, a short detail string).


def _truncate(rng, seed, seeds):
    cut = rng.randrange(len(seed))
    return seed[:cut], f"cut at {cut}/{len(seed)}"


def _flip(rng, seed, count):
    out = bytearray(seed)
    bits = rng.sample(range(8 * len(seed)), count)
    for bit in bits:
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out), f"bits {sorted(bits)[:8]}"


def _flip1(rng, seed, seeds):
    return _flip(rng, seed, 1)


def _flip_n(rng, seed, seeds):
    return _flip(rng, seed, rng.randint(2, 16))


def _overwrite(rng, seed, seeds):
    at = rng.randrange(len(seed))
    run = min(rng.randint(1, 8), len(seed) - at)
    return _scramble(rng, seed, at, run), f"{run} bytes near {at}"


def _insert_delete(rng, seed, seeds):
    at, n = rng.randrange(len(seed)), rng.randint(1, 16)
    if rng.random() < 0.5:
        return seed[:at] + rng.randbytes(n) + seed[at:], f"inserted {n} at {at}"
    return seed[:at] + seed[at + n :], f"deleted {n} at {at}"


def _random(rng, seed, seeds):
    body = rng.randbytes(rng.randrange(2048))
    if rng.random() < 0.5:
        return seed[:PREAMBLE] + body, f"signature + {len(body)} random bytes"
    return body, f"{len(body)} random bytes"


def _empty(rng, seed, seeds):
    return b"", "0 bytes"


def _absurd_head(rng, seed, seeds):
    w, h = rng.choice(ABSURD_SIZES), rng.choice(ABSURD_SIZES + (48,))
    new = _with_chunk(seed, b"HEAD", lambda b: b[:2] + struct.pack("<II", w, h) + b[10:])
    return new, f"HEAD {w}x{h}"


def _chunk_fixed(rng, seed, seeds):
    chunks = split_chunks(seed)
    i = rng.randrange(len(chunks) - 1)  # not IEND
    kind, body = chunks[i]
    chunks[i] = (kind, _scramble(rng, body))
    return join_chunks(seed[:PREAMBLE], chunks), f"{kind.decode()} data, CRC fixed"


def _words_at(major: int, body: bytes) -> int:
    """Offset of the ANS words in a DATA chunk's data (docs/FORMAT.md 3.2; 1.x: A.3)."""
    if major == 1:
        return 26 + 4 * struct.unpack_from("<H", body, 20)[0]
    return 23 + struct.unpack_from("<H", body, 21)[0]


def _words_fixed(rng, seed, seeds):
    def edit(body: bytes) -> bytes:
        return _scramble(rng, body, _words_at(seed[8], body))

    return _with_chunk(seed, b"DATA", edit), "DATA words, CRC fixed"


def _structure(rng, seed, seeds):
    chunks = split_chunks(seed)
    i, j = rng.randrange(len(chunks)), rng.randrange(len(chunks))
    op = rng.choice(("drop", "duplicate", "swap", "unknown_optional", "unknown_critical"))
    if op == "drop":
        del chunks[i]
    elif op == "duplicate":
        chunks.insert(j, chunks[i])
    elif op == "swap":
        chunks[i], chunks[j] = chunks[j], chunks[i]
    else:
        kind = b"zxQw" if op == "unknown_optional" else b"ZxQw"
        chunks.insert(max(1, j), (kind, rng.randbytes(rng.randrange(64))))
    return join_chunks(seed[:PREAMBLE], chunks), f"{op} ({i}, {j})"


def _splice(rng, seed, seeds):
    other = rng.choice(seeds)
    mine, theirs = split_chunks(seed), dict(split_chunks(other))
    kinds = [k for k, _ in mine if k in theirs and k != b"IEND"]
    kind = rng.choice(kinds)
    spliced = [(k, theirs[kind] if k == kind else b) for k, b in mine]
    return join_chunks(seed[:PREAMBLE], spliced), f"{kind.decode()} from another seed"


def _size_lie(rng, seed, seeds):
    w, h = rng.choice(LIE_SIZES), rng.choice(LIE_SIZES)
    new = _with_chunk(seed, b"HEAD", lambda b: b[:2] + struct.pack("<II", w, h) + b[10:])
    new = _with_chunk(new, b"DATA", lambda b: struct.pack("<IIII", 0, 0, w, h) + b[16:])
    # a tile's size change makes ALPH the wrong length; drop it so the lie gets further
    chunks = [c for c in split_chunks(new) if c[0] != b"ALPH"]
    return join_chunks(new[:PREAMBLE], chunks), f"HEAD and tile say {w}x{h}"


MUTATORS: dict[str, Callable] = {
    "truncate": _truncate,
    "flip1": _flip1,
    "flipN": _flip_n,
    "overwrite": _overwrite,
    "insert_delete": _insert_delete,
    "random": _random,
    "empty": _empty,
    "absurd_head": _absurd_head,
    "chunk_fixed": _chunk_fixed,
    "words_fixed": _words_fixed,
    "structure": _structure,
    "splice": _splice,
    "size_lie": _size_lie,
}


def make_case(
    seed: int, index: int, seeds: list[bytes], kinds=KINDS
) -> tuple[str, int, bytes, str]:
    """Case index of a run: (kind, seed file number, file bytes, detail)."""
    rng = random.Random(f"gmx-fuzz:{seed}:{index}")
    if index < len(kinds):  # every kind at least once
        kind = kinds[index]
    else:
        kind = rng.choices(kinds, [_WEIGHTS[k] for k in kinds])[0]
    source = rng.randrange(len(seeds))
    data, detail = MUTATORS[kind](rng, seeds[source], seeds)
    return kind, source, data, detail


# --------------------------------------------------------------------------- seeds and cases


def seed_images():
    """The small images the seed files are encoded from: (image, quality) pairs."""
    from PIL import Image, ImageCms

    with Image.open(SAMPLE) as im:
        base = im.convert("RGB")
    rgb = base.crop((200, 100, 248, 132))
    gray = base.crop((300, 200, 324, 220)).convert("L")
    ramp = Image.linear_gradient("L").resize(gray.size)
    gray_alpha = Image.merge("LA", (gray, ramp))
    meta = base.crop((400, 300, 416, 312))
    exif = Image.Exif()
    exif[0x0112] = 6
    meta.info["exif"] = exif.tobytes()
    meta.info["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return [(rgb, 75.0), (gray_alpha, 50.0), (meta, 90.0)]


def seed_files(codec) -> list[bytes]:
    """The seed .gmx files (deterministic), the last with an unknown optional chunk."""
    files = [codec.encode(img, quality) for img, quality in seed_images()]
    chunks = split_chunks(files[-1])
    chunks.insert(len(chunks) - 1, (b"teSt", b"an optional chunk a reader skips"))
    files[-1] = join_chunks(files[-1][:PREAMBLE], chunks)
    return files


def decode_with_symbols(codec, data: bytes):
    """(image, decoded y symbols) of data: the symbols are caught on their way to synthesis."""
    caught: list = []
    synthesize = codec._synthesize

    def spy(groups, *args):
        caught.extend(g.copy() for g in groups)
        return synthesize(groups, *args)

    codec._synthesize = spy
    try:
        return codec.decode(data), caught
    finally:
        del codec._synthesize  # back to the class's method


def _same_symbols(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    return all(x.shape == y.shape and (x == y).all() for x, y in zip(a, b, strict=True))


def _classify(img, symbols: list, ref) -> str:
    """How a decoded image relates to the seed's decode ref = (image, symbols)."""
    ref_img, ref_symbols = ref
    if (img.mode, img.size, img.tobytes()) != (ref_img.mode, ref_img.size, ref_img.tobytes()):
        # 1.x: header fields (quality, size, channels) are not under the symbol checksums
        return "decoded_header_lie" if _same_symbols(symbols, ref_symbols) else "decoded_wrong"
    meta = [(i.info.get("exif"), i.info.get("icc_profile")) for i in (img, ref_img)]
    return "decoded_same" if meta[0] == meta[1] else "decoded_other_metadata"


def run_case(codec, data: bytes, reference: Callable[[], tuple]) -> dict:
    """Parse, describe and decode data; classify the outcome.

    reference() is the seed's ``decode_with_symbols``. Outcomes: refused (a ValueError
    with a one-line message), decoded_same, decoded_other_metadata, decoded_header_lie
    (other pixels from the very same symbols), decoded_wrong (other symbols: the decoder
    lied) and crash.
    """
    from gmcodec import container as ct

    start = time.perf_counter()
    try:
        f = ct.parse(data, codec.limits)
        ct.format_info(ct.describe(f, len(data)), verbose=True)
        img, symbols = decode_with_symbols(codec, data)
    except ValueError as e:  # ContainerError, DecodeError and MismatchError are ValueErrors
        message = str(e)
        ok = bool(message.strip()) and "\n" not in message
        outcome = {"outcome": "refused" if ok else "crash", "error": type(e).__name__}
        outcome["message"] = message[:200]
    except Exception as e:  # noqa: BLE001 - any other class is what the fuzzer looks for
        outcome = {"outcome": "crash", "error": type(e).__name__, "message": str(e)[:200]}
    else:
        outcome = {"outcome": _classify(img, symbols, reference())}
    outcome["seconds"] = round(time.perf_counter() - start, 4)
    return outcome


# --------------------------------------------------------------------------- worker


def _limit_memory(max_gb: float) -> None:
    if max_gb > 0:
        limit = int(max_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker(args: argparse.Namespace) -> None:
    """Run cases [start, stop) and print one JSON line each (the first line: 'ready')."""
    import torch

    from gmcodec.codec import Codec

    torch.set_num_threads(1)
    codec = Codec.load(device="cpu")
    seeds = seed_files(codec)
    references: dict[int, tuple] = {}

    def reference_of(n: int) -> tuple:
        if n not in references:
            references[n] = decode_with_symbols(codec, seeds[n])
        return references[n]

    _limit_memory(args.max_memory_gb)
    print(json.dumps({"ready": True, "rss_mb": _rss_mb(), "seeds": [len(s) for s in seeds]}))
    sys.stdout.flush()
    for i in range(args.start, args.stop):
        kind, source, data, detail = make_case(args.seed, i, seeds)
        faulthandler.dump_traceback_later(args.hang_s, exit=True)
        result = run_case(codec, data, lambda n=source: reference_of(n))
        faulthandler.cancel_dump_traceback_later()
        result |= {"i": i, "kind": kind, "detail": detail, "rss_mb": _rss_mb()}
        print(json.dumps(result))
        sys.stdout.flush()


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --------------------------------------------------------------------------- parent


class _Worker:
    """A worker process and a line reader with a deadline."""

    def __init__(self, args: argparse.Namespace, start: int, log: Path) -> None:
        command = [sys.executable, __file__, "--worker", "--seed", str(args.seed)]
        command += ["--start", str(start), "--stop", str(args.cases)]
        command += ["--hang-s", str(args.hang_s), "--max-memory-gb", str(args.max_memory_gb)]
        self.log_path, self.log_from = log, log.stat().st_size if log.exists() else 0
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT, bufsize=0
        )
        self.buffer = b""

    def read(self, timeout: float) -> dict | None:
        """The next JSON line, or None on a timeout or at end of output."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            block = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not block:
                return None
            self.buffer += block
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def new_log(self) -> str:
        """What this worker wrote on stderr."""
        with open(self.log_path, "rb") as fh:
            fh.seek(self.log_from)
            return fh.read().decode(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self.log.close()
        return code


def run(args: argparse.Namespace) -> dict:
    """Run the cases in restartable workers; return the summary."""
    with tempfile.TemporaryDirectory() as tmp:
        return _run(args, Path(tmp) / "worker.log")


def _run(args: argparse.Namespace, log: Path) -> dict:
    results, events = [], []
    begin, next_case, ready_info = time.monotonic(), 0, None
    while next_case < args.cases and time.monotonic() - begin < args.time_limit:
        w = _Worker(args, next_case, log)
        ready = w.read(args.startup_s)
        if ready is None or not ready.get("ready"):
            w.stop()
            events.append({"event": "worker failed to start", "log": w.new_log()[-500:]})
            break
        ready_info = ready_info or ready
        while next_case < args.cases and time.monotonic() - begin < args.time_limit:
            line = w.read(args.hang_s + 5)
            if line is None:  # no answer in time, or the worker is gone
                alive = w.proc.poll() is None
                code, text = w.stop(), w.new_log()
                hung = alive or "Timeout (" in text  # faulthandler's watchdog fired
                tail = " | ".join(text.strip().splitlines()[-3:])
                results.append(
                    {
                        "i": next_case,
                        "outcome": "hang" if hung else "died",
                        "returncode": code,
                        "log": tail[-500:],
                    }
                )
                next_case += 1
                break
            results.append(line)
            next_case = line["i"] + 1
        else:
            w.stop()
    return summarize(args, results, events, ready_info, time.monotonic() - begin)


def summarize(args, results: list[dict], events: list, ready: dict | None, elapsed: float):
    """The JSON summary of a run."""
    outcomes = Counter(r["outcome"] for r in results)
    by_kind: dict[str, Counter] = {}
    for r in results:
        by_kind.setdefault(r.get("kind", "?"), Counter())[r["outcome"]] += 1
    refused = Counter(r["error"] for r in results if r["outcome"] == "refused")
    bad = [r for r in results if r["outcome"] in BAD_OUTCOMES]
    lies = [r for r in results if r["outcome"] == "decoded_header_lie"]
    slowest = max(results, key=lambda r: r.get("seconds", 0), default={})
    return {
        "command": " ".join(["python", "scripts/fuzz.py", *sys.argv[1:]]),
        "seed": args.seed,
        "cases": len(results),
        "elapsed_s": round(elapsed, 1),
        "outcomes": dict(outcomes),
        "refused_by_error": dict(refused),
        "crashes": outcomes["crash"],
        "hangs": outcomes["hang"],
        "died": outcomes["died"],
        "decoded_wrong": outcomes["decoded_wrong"],
        "max_case_s": slowest.get("seconds"),
        "slowest_case": {k: slowest.get(k) for k in ("i", "kind", "detail", "outcome")},
        "baseline_rss_mb": ready and ready["rss_mb"],
        "max_rss_mb": max((r.get("rss_mb", 0) for r in results), default=None),
        "seed_file_bytes": ready and ready["seeds"],
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "problems": bad[:20],
        "header_lies": sorted({f"{r['kind']}: {r['detail']}" for r in lies})[:20],
        "events": events,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=2000, help="number of cases (default 2000)")
    p.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    p.add_argument("--time-limit", type=float, default=300, help="seconds (default 300)")
    p.add_argument("--hang-s", type=float, default=120, help="a case over this hangs (120)")
    p.add_argument("--startup-s", type=float, default=600, help="worker start limit (600)")
    p.add_argument(
        "--max-memory-gb", type=float, default=8, help="worker address-space limit (8; 0: none)"
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    summary = run(args)
    print(json.dumps(summary, indent=2))
    return 1 if any(summary["outcomes"].get(o) for o in BAD_OUTCOMES) else 0


if __name__ == "__main__":
    sys.exit(main())
