"""Index time of FolderDataset for 10k, 100k and 370k files, with and without the index cache.

For each size, the script fills a temporary folder on local disk (under ``/tmp`` by
default) with empty ``.png`` files: ``images/`` for the unlabelled pool and, for the
labelled runs, ``masks/`` as well. Indexing never opens a file, so empty files time
exactly what a real folder of the same names would. Three variants are timed:

- ``no_cache``: ``FolderDataset(root)``, one ``os.scandir`` pass per folder (the default);
- ``cache_cold``: ``cache=True`` with no cache file yet: the listing plus writing the file;
- ``cache_warm``: ``cache=True`` with a valid cache file: a ``stat`` per folder and the
  file loaded, with no listing.

The OS keeps the folder in its dentry cache after the first listing, so every variant
runs with a warm OS cache; "cold" means that the index cache file is absent. On a
network file system, where a listing costs far more, the warm-cache gain grows.

Memory: ``index_B`` is the size of the packed index per sample (name buffer, int64
offsets, one byte of mask suffix per labelled sample); ``retained_B`` what
``tracemalloc`` sees the finished dataset hold per sample; ``peak_B`` the peak during
construction per sample (the transient list of names).

The rows are appended to ``benchmarks/data/results.csv`` with the CPU, the file system,
the Python, torch and numpy versions and the git sha.

    python -m benchmarks.data.index_files                      # 10k, 100k and 370k files
    python -m benchmarks.data.index_files --sizes 10000 --repeats 3   # a quick run
    python -m benchmarks.data.index_files --no-csv             # print only
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from benchmarks.kernel.run import git_sha
from s4seg.data import FolderDataset

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "results.csv"
FIELDS = [
    "run_id", "git_sha", "device", "cpu", "filesystem", "python", "torch", "numpy", "files",
    "labelled", "variant", "repeats", "s_p50", "s_min", "s_max", "index_B", "retained_B",
    "peak_B", "cache_file_B", "note",
]  # fmt: skip
DEFAULT_SIZES = (10_000, 100_000, 370_000)
VARIANTS = ("no_cache", "cache_cold", "cache_warm")
GOAL_FILES, GOAL_S = 370_000, 10.0  # the issue: 370k files indexed in under 10 s


# ---------------------------------------------------------------- shared with loader_throughput


def run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpu_name() -> str:
    """The CPU model and the number of cores this process may use."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores"


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def host_fields() -> dict[str, str]:
    return {
        "run_id": run_id(),
        "git_sha": git_sha(),
        "device": device_name(),
        "cpu": cpu_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def filesystem(path: Path) -> str:
    """File system type and source of the mount that holds ``path`` (Linux), e.g. "ext4 /dev/vda"."""
    best, found = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return found
    target = os.path.realpath(path)
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, found = mount, f"{parts[2]} {parts[0]}"
    return found


def append_csv(rows: Sequence[dict[str, object]], path: Path, fields: Sequence[str]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields))
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})


def print_table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r.get(c, "")).rjust(w) for c, w in zip(columns, widths, strict=True)))


# ---------------------------------------------------------------------------------- this one


def make_files(folder: Path, n: int) -> None:
    """``n`` empty files ``patch_0000000.png`` ... in ``folder``."""
    folder.mkdir(parents=True)
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    for i in range(n):
        os.close(os.open(folder / f"patch_{i:07d}.png", flags, 0o644))


def age(*folders: Path) -> None:
    """Set the folders' mtimes a minute back.

    The index cache never trusts a folder modified less than 3 s before it was listed
    (its mtime could be unchanged by a later edit within the same timestamp tick). A
    freshly generated folder is such a folder; a real dataset has been sitting on disk.
    """
    ns = time.time_ns() - 60 * 10**9
    for f in folders:
        os.utime(f, ns=(ns, ns))


def timed(fn: Callable[[], FolderDataset], before: Callable[[], None], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        before()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def memory(fn: Callable[[], FolderDataset], n: int) -> tuple[float, float, float]:
    """(packed index, retained by the dataset, peak during construction) in bytes per sample."""
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        ds = fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    index = ds._names.nbytes + ds._mask_suffix_idx.nbytes
    return index / n, (current - start) / n, (peak - start) / n


def bench_size(base: Path, n: int, repeats: int, host: dict[str, str]) -> list[dict[str, object]]:
    root = Path(tempfile.mkdtemp(prefix=f"s4seg-index-{n}-", dir=base))
    rows: list[dict[str, object]] = []
    try:
        t = time.perf_counter()
        make_files(root / "images", n)
        make_files(root / "masks", n)
        age(root / "images", root / "masks")
        made = time.perf_counter() - t
        fs = filesystem(root)
        print(f"\n{n:,} files per folder generated in {made:.1f} s under {root} ({fs})")
        for labelled in (False, True):
            cache_file = FolderDataset(root, labelled=labelled, cache=True).cache_path
            if cache_file is None:
                raise RuntimeError("cache=True gave no cache file")

            def remove_cache(cache_file: Path = cache_file) -> None:
                cache_file.unlink(missing_ok=True)

            def keep_cache() -> None:
                pass

            def plain(labelled: bool = labelled) -> FolderDataset:
                return FolderDataset(root, labelled=labelled)

            def cached(labelled: bool = labelled) -> FolderDataset:
                return FolderDataset(root, labelled=labelled, cache=True)

            plans = {
                "no_cache": (plain, keep_cache),
                "cache_cold": (cached, remove_cache),
                "cache_warm": (cached, keep_cache),
            }
            for variant, (fn, before) in plans.items():
                before()
                ds = fn()  # one untimed run: the OS dentry cache, and a cache file for "warm"
                expect_hit = variant == "cache_warm"
                if len(ds) != n or (variant != "no_cache" and ds.cache_hit is not expect_hit):
                    raise RuntimeError(f"{variant}: {len(ds)} samples, cache_hit={ds.cache_hit}")
                times = timed(fn, before, repeats)
                before()
                index_b, retained_b, peak_b = memory(fn, n)
                size = cache_file.stat().st_size if cache_file.exists() else ""
                rows.append(dict(
                    host, filesystem=fs, files=n, labelled=labelled, variant=variant,
                    repeats=repeats, s_p50=f"{statistics.median(times):.4f}",
                    s_min=f"{min(times):.4f}", s_max=f"{max(times):.4f}",
                    index_B=f"{index_b:.1f}", retained_B=f"{retained_b:.1f}",
                    peak_B=f"{peak_b:.1f}",
                    cache_file_B=size if variant != "no_cache" else "",
                    note=f"{'2' if labelled else '1'} folder(s) of {n} empty files; "
                    f"load average {os.getloadavg()[0]:.1f}",
                ))  # fmt: skip
                print(
                    f"  {'labelled' if labelled else 'unlabelled':10s} {variant:10s} "
                    f"median {statistics.median(times):8.4f} s  index {index_b:5.1f} B/sample"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated file counts per folder (default: %(default)s)",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed constructions per variant")
    p.add_argument("--tmp", type=Path, default=Path("/tmp"), help="where to generate the files")
    p.add_argument("--no-csv", action="store_true", help="print only, append no rows")
    args = p.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < 1 or args.repeats < 1:
        p.error("--sizes needs positive counts and --repeats must be >= 1")
    host = host_fields()
    print(f"{host['cpu']} | Python {host['python']} | torch {host['torch']} | {host['git_sha']}")
    rows: list[dict[str, object]] = []
    for n in sizes:
        rows.extend(bench_size(args.tmp, n, args.repeats, host))
    print()
    print_table(
        rows,
        ["files", "labelled", "variant", "s_p50", "s_min", "s_max", "index_B", "retained_B",
         "peak_B", "cache_file_B"],
    )  # fmt: skip
    goal = [r for r in rows if r["files"] == GOAL_FILES]
    if goal:
        worst = max(float(str(r["s_p50"])) for r in goal)
        verdict = "met" if worst < GOAL_S else "NOT met"
        print(f"\ngoal {GOAL_FILES:,} files < {GOAL_S:.0f} s: {verdict} (slowest {worst:.2f} s)")
    if not args.no_csv:
        append_csv(rows, CSV_PATH, FIELDS)
        print(f"appended {len(rows)} rows to {CSV_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
