"""Benchmark suite of the fused confidence-masked cross-entropy.

Providers (the eager reference, ``torch.compile`` of the reference, the Triton
kernel) x modes (forward, backward, full) x shapes x dtypes. The rows are
appended to ``benchmarks/kernel/results.csv`` with the device, the torch and
triton versions and the git sha; ``report.py`` prints the ratios and plots them.

Usage::

    python -m benchmarks.kernel.run            # CUDA suite on a GPU, else the CPU mode
    python -m benchmarks.kernel.run --cpu      # the small CPU mode (reference vs compile)
    python benchmarks/kernel/run.py --no-csv   # print only

Timing: on CUDA, ``triton.testing.do_bench`` (CUDA events, L2 flushed between
calls) median with p20/p80, and the peak memory one call allocates above what
its inputs hold. On the CPU, one torch thread timed in thread CPU time
(``time.thread_time``, robust to other load on a shared machine), median and
p20/p80 of at least 5 calls. Bandwidth: the bytes of a minimal byte model
(forward reads the logits once, backward reads them again and writes the
gradient: 1, 2 and 3 x N x bytes per element) over the median time, next to the
device-to-device copy bandwidth measured in the same run (a copy of the logits:
2 x N x bytes).

The scenario is the self-training step of S4GAN: pseudo-labels and confidence
from the student's own logits, one scalar threshold, loss over the selected
pixels. The CSV records the fraction of pixels selected.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from s4seg.ops.reference import confidence_masked_cross_entropy_reference

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "results.csv"
FIELDS = [
    "run_id", "git_sha", "device", "torch", "triton", "provider", "mode", "batch", "classes",
    "height", "width", "dtype", "threshold", "selected_frac", "ms_p50", "ms_p20", "ms_p80",
    "peak_mem_mib", "model_bytes", "gbps", "copy_gbps", "frac_of_copy", "status", "note",
]  # fmt: skip
PROVIDERS = ("eager", "compile", "triton")
MODES = ("forward", "backward", "full")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Logits of scale 4 with threshold 0.5 keep a sizeable share of pixels at every C below,
# so neither the "nothing selected" nor the "all selected" shortcut is what gets timed.
LOGIT_SCALE = 4.0
THRESHOLD = 0.5
CPU_NOTE_TRITON = "needs a CUDA GPU (Triton's CPU interpreter checks correctness, not speed)"


@dataclass(frozen=True)
class Shape:
    """A batch of logits, (B, C, H, W)."""

    b: int
    c: int
    h: int
    w: int

    @property
    def numel(self) -> int:
        return self.b * self.c * self.h * self.w

    def __str__(self) -> str:
        return f"B={self.b} C={self.c} {self.h}x{self.w}"


# The shapes. 321^2 has an odd H*W (no 16-byte loads), so 320^2 runs too.
CUDA_SHAPES = [
    Shape(8, 21, 321, 321),
    Shape(8, 21, 320, 320),
    Shape(8, 19, 512, 1024),
    Shape(8, 150, 512, 512),
]
# Small enough that eager + compile of both dtypes stay within about 3 minutes on 2 cores.
CPU_SHAPES = [Shape(2, 21, 65, 65), Shape(2, 19, 64, 128)]


def model_bytes(shape: Shape, dtype: torch.dtype, mode: str) -> int:
    """The minimal byte model: logits read once per pass, the gradient written once."""
    passes = {"forward": 1, "backward": 2, "full": 3}[mode]
    return passes * shape.numel * torch.empty((), dtype=dtype).element_size()


def git_sha() -> str:
    """Short sha of HEAD, with ``-dirty`` when the working tree has changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "not installed"
    return triton.__version__


# --------------------------------------------------------------------------- providers


def make_provider(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``fn(logits, threshold) -> loss`` for one provider."""
    if name == "eager":
        return lambda x, thr: confidence_masked_cross_entropy_reference(x, thr, "scalar")[0]
    if name == "compile":
        # Backward mode times one retained graph; a compiled backward that donates its
        # saved buffers refuses retain_graph=True, so donation is off for every mode.
        import torch._functorch.config

        torch._functorch.config.donated_buffer = False
        # dynamic=False: one graph per shape and dtype, as a training loop with fixed crops.
        compiled = torch.compile(confidence_masked_cross_entropy_reference, dynamic=False)
        return lambda x, thr: compiled(x, thr, "scalar")[0]
    if name == "triton":
        from s4seg.ops.triton_confidence_masked_ce import triton_confidence_masked_cross_entropy

        def fn(x: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
            return triton_confidence_masked_cross_entropy(
                x, thr, "scalar", teacher_logits=None, labels=None, image_keep=None,
                ignore_index=255, normalize="selected", temperature=1.0,
            )[0]  # fmt: skip

        return fn
    raise ValueError(f"unknown provider {name!r}; choose from {PROVIDERS}")


def mode_fn(
    provider: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    thr: torch.Tensor,
    mode: str,
) -> Callable[[], object]:
    """The callable to time. Backward reuses one graph (retain_graph), as Liger-Kernel does."""
    if mode == "forward":
        return lambda: provider(x, thr)
    if mode == "backward":
        loss = provider(x, thr)
        return lambda: loss.backward(retain_graph=True)
    return lambda: provider(x, thr).backward()


# --------------------------------------------------------------------------- timing


def bench_cuda(fn: Callable[[], object], x: torch.Tensor) -> tuple[float, float, float, float]:
    """(p50, p20, p80) in ms from do_bench, and the peak MiB one call allocates."""
    import triton.testing

    p50, p20, p80 = triton.testing.do_bench(fn, quantiles=[0.5, 0.2, 0.8], grad_to_none=[x])
    x.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    x.grad = None
    return p50, p20, p80, peak


def bench_cpu(
    fn: Callable[[], object], x: torch.Tensor, min_time_s: float = 0.5, max_calls: int = 50
) -> tuple[float, float, float, float]:
    """(p50, p20, p80) in ms of the calling thread's CPU time; peak memory not tracked (NaN).

    CPU time of one thread (torch runs single-threaded in the CPU mode) instead of
    wall time: on a shared machine, wall time mostly measures the other processes.
    """
    for _ in range(2):
        fn()
        x.grad = None
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < min_time_s and len(times) < max_calls):
        t0 = time.thread_time()
        fn()
        times.append((time.thread_time() - t0) * 1e3)
        x.grad = None
    q = statistics.quantiles(times, n=10, method="inclusive")  # deciles: q[1] = p20, q[7] = p80
    return statistics.median(times), q[1], q[7], float("nan")


def copy_gbps(x: torch.Tensor, cuda: bool) -> float:
    """Device-to-device copy bandwidth on a tensor of the logits' size (read + write)."""
    src = x.detach().clone()
    dst = torch.empty_like(src)
    if cuda:
        import triton.testing

        ms = triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median")
    else:
        ms = bench_cpu(lambda: dst.copy_(src), x)[0]
    return 2 * src.numel() * src.element_size() / (ms * 1e-3) / 1e9


# --------------------------------------------------------------------------- suite


def run_suite(
    *,
    cuda: bool,
    shapes: list[Shape],
    dtypes: list[str],
    providers: list[str],
    modes: list[str],
) -> list[dict[str, object]]:
    device = "cuda" if cuda else "cpu"
    run_id = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = {
        "run_id": run_id,
        "git_sha": git_sha(),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "triton": triton_version(),
    }
    # CPU timings move with whatever else runs on the machine: the load goes in the note.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    host = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), "
        f"thread CPU time, load average {load:.1f} at start"
    )
    rows: list[dict[str, object]] = []
    made: dict[str, Callable | Exception] = {}
    print(
        f"{meta['device']}  torch {meta['torch']}  triton {meta['triton']}  git {meta['git_sha']}"
    )
    header = f"{'shape':24s} {'dtype':9s} {'provider':8s} {'mode':9s} {'p50 ms':>9s} {'p20':>9s} {'p80':>9s} {'GB/s':>8s} {'of copy':>8s}"
    print(header)
    for shape in shapes:
        for dtype_name in dtypes:
            dtype = DTYPES[dtype_name]
            g = torch.Generator(device=device).manual_seed(0)
            x = LOGIT_SCALE * torch.randn(
                shape.b, shape.c, shape.h, shape.w, generator=g, device=device
            )
            x = x.to(dtype).requires_grad_(True)
            thr = torch.tensor(THRESHOLD, device=device)
            _, stats = confidence_masked_cross_entropy_reference(x.detach(), thr, "scalar")
            frac = float(stats.pixel_fraction)
            bw = copy_gbps(x, cuda)
            base = dict(meta, batch=shape.b, classes=shape.c, height=shape.h, width=shape.w,
                        dtype=dtype_name, threshold=THRESHOLD, selected_frac=f"{frac:.4f}",
                        copy_gbps=f"{bw:.1f}")  # fmt: skip
            for name in providers:
                if name == "triton" and not cuda:
                    for mode in modes:
                        rows.append(dict(base, provider=name, mode=mode, status="skipped",
                                         note=CPU_NOTE_TRITON))  # fmt: skip
                    print(
                        f"{shape!s:24s} {dtype_name:9s} {name:8s} {'all':9s} skipped: {CPU_NOTE_TRITON}"
                    )
                    continue
                if name not in made:
                    try:
                        made[name] = make_provider(name)
                    except Exception as exc:  # e.g. triton missing: record, go on
                        made[name] = exc
                provider = made[name]
                for mode in modes:
                    row = dict(base, provider=name, mode=mode)
                    try:
                        if isinstance(provider, Exception):
                            raise provider
                        fn = mode_fn(provider, x, thr, mode)
                        bench = bench_cuda if cuda else bench_cpu
                        p50, p20, p80, peak = bench(fn, x)
                    except Exception as exc:  # a provider that fails here is a result too
                        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
                        rows.append(dict(row, status="skipped", note=reason))
                        print(
                            f"{shape!s:24s} {dtype_name:9s} {name:8s} {mode:9s} skipped: {reason}"
                        )
                        continue
                    nbytes = model_bytes(shape, dtype, mode)
                    gbps = nbytes / (p50 * 1e-3) / 1e9
                    rows.append(dict(
                        row, ms_p50=f"{p50:.4f}", ms_p20=f"{p20:.4f}", ms_p80=f"{p80:.4f}",
                        peak_mem_mib="" if math.isnan(peak) else f"{peak:.1f}", model_bytes=nbytes,
                        gbps=f"{gbps:.1f}", frac_of_copy=f"{gbps / bw:.3f}", status="ok",
                        note="" if cuda else host,
                    ))  # fmt: skip
                    print(
                        f"{shape!s:24s} {dtype_name:9s} {name:8s} {mode:9s} {p50:9.3f} {p20:9.3f} "
                        f"{p80:9.3f} {gbps:8.1f} {gbps / bw:8.1%}"
                    )
                    x.grad = None
    return rows


def append_csv(rows: list[dict[str, object]], path: Path) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in FIELDS})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="the small CPU mode, even on a GPU")
    parser.add_argument("--providers", nargs="+", default=list(PROVIDERS), choices=PROVIDERS)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--csv", type=Path, default=CSV_PATH, help="CSV to append rows to")
    parser.add_argument("--no-csv", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        parser.error("unset TRITON_INTERPRET: the interpreter is for tests, not timings")

    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda:
        print(
            "CPU mode: eager reference vs torch.compile at small shapes, one thread, timed "
            "in thread CPU time. The CUDA rows (Triton, the issue's shapes) need a GPU: run "
            "this script on a CUDA machine."
        )
        torch.set_num_threads(1)
    rows = run_suite(
        cuda=cuda,
        shapes=CUDA_SHAPES if cuda else CPU_SHAPES,
        dtypes=args.dtypes,
        providers=args.providers,
        modes=args.modes,
    )
    if not args.no_csv:
        append_csv(rows, args.csv)
        print(f"appended {len(rows)} rows to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
