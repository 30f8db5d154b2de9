"""The Markdown summary: what ran, the goals, each stage's figures, what was skipped."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from benchmarks.gpu.goals import Goal, precision, stage_gap
from benchmarks.gpu.runner import Context, first_line
from benchmarks.gpu.settings import ROOT, WARMUP_STEPS


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(v).replace("|", "\\|").replace("\n", " ") for v in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def header_section(ctx: Context, wall_s: float) -> str:
    m, out = ctx.meta, ctx.out
    lines = ["# GPU suite (`python -m benchmarks.gpu`)", ""]
    if ctx.dry_run:
        lines += [
            "**Dry run** on the CPU at toy sizes: it checks the suite's wiring. No figure "
            "here measures a goal; the goals need the GPU run.",
            "",
        ]
    csvs = ", ".join(
        f"`{shown(p)}`" for p in (out.kernel_csv, out.step_csv, out.loader_csv, out.run_csv)
    )
    lines += [
        f"- Device: {m['device']}; torch {m['torch']}, triton {m['triton']}, CUDA {m['cuda']}, "
        f"Python {m['python']}.",
        f"- git `{m['git_sha']}`, run id `{ctx.run_id()}`.",
        f"- Wall time {wall_s:.0f} s of the {ctx.timeout:.0f} s budget.",
        f"- The rows went to {csvs}.",
    ]
    return "\n".join(lines)


def goals_section(goals: list[Goal]) -> str:
    rows = [
        [g.name, g.case, g.measured, g.target, g.result + (f": {g.note}" if g.note else "")]
        for g in goals
    ]
    passed = sum(g.result == "PASS" for g in goals)
    missed = sum(g.result == "MISS" for g in goals)
    head = f"## Goals\n\n{passed} passed, {missed} missed, {len(goals) - passed - missed} not measured.\n"
    return head + "\n" + md_table(["goal", "case", "measured", "target", "result"], rows)


def stages_section(ctx: Context) -> str:
    rows = [
        [
            i,
            f"{r.name}: {r.title}",
            r.status,
            f"{r.seconds:.1f} s",
            f"{r.cap:g} s",
            "; ".join(r.notes),
        ]
        for i, r in enumerate(ctx.results.values(), 1)  # one result per stage, in order
    ]
    return "## Stages\n\n" + md_table(["#", "stage", "status", "time", "cap", "notes"], rows)


def correctness_section(ctx: Context) -> str:
    res = ctx.results["correctness"]
    lines = ["## 1. Correctness", ""]
    if "counts" not in res.data:
        return "\n".join([*lines, f"Nothing recorded: {stage_gap(res)}."])
    counts = ", ".join(f"{v} {k}" for k, v in res.data["counts"].items())
    what = "collected (the dry run only collects them)" if ctx.settings.collect_only else "ran"
    lines += [f"`{res.data['command']}` {what}: {counts}; exit code {res.data['rc']}."]
    lines += [f"- FAILED/ERROR {f}" for f in res.data["failures"]]
    return "\n".join(lines)


def kernel_section(ctx: Context) -> str:
    res = ctx.results["kernel"]
    ok = [r for r in res.rows if r.get("status") == "ok"]
    lines = ["## 2. Fused op (`benchmarks/kernel/run.py`)", ""]
    if not ok:
        return "\n".join([*lines, f"No timed rows: {stage_gap(res)}."])
    header = ["shape", "dtype", "provider", "mode", "ms p50", "GB/s", "share of copy", "peak MiB"]
    rows = [
        [
            f"B={r['batch']} C={r['classes']} {r['height']}x{r['width']}",
            r["dtype"],
            r["provider"],
            r["mode"],
            r["ms_p50"],
            r["gbps"],
            r["frac_of_copy"],
            r.get("peak_mem_mib", ""),
        ]
        for r in ok
    ]
    return "\n".join([*lines, md_table(header, rows)])


def step_section(ctx: Context) -> str:
    res = ctx.results["step"]
    lines = ["## 3. Whole S4GAN step (`benchmarks/step/run.py`)", ""]
    entries = res.data.get("by_amp", {})
    if not entries:
        return "\n".join([*lines, f"Nothing measured: {stage_gap(res)}."])
    header = [
        "precision asked (ran)",
        "variant",
        "steps",
        "ms p50",
        "steps/s",
        "peak MiB per step",
        "time / unfused",
    ]
    rows = [
        [
            f"{precision(amp)} ({precision(e['ran'])})",
            r["variant"],
            r["steps"],
            r["ms_p50"],
            r["steps_per_s"],
            r["peak_mem_mib"],
            r["ratio_to_unfused"],
        ]
        for amp, e in entries.items()
        for r in e["rows"].values()
    ]
    preset = ctx.settings.step_preset
    lines.append(
        f"{preset['backbone']}, {preset['size']} px, batch {preset['batch']}, "
        f"C={preset['classes']}, channels-last {preset['channels_last']}; batches "
        "already on the device, so the data is not timed.\n"
    )
    return "\n".join([*lines, md_table(header, rows)])


def loader_section(ctx: Context) -> str:
    res = ctx.results["loader"]
    lines = ["## 4. Loader (`benchmarks/data/loader_throughput.py`)", ""]
    if not res.rows:
        return "\n".join([*lines, f"Nothing measured: {stage_gap(res)}."])
    header = ["workers", "loader img/s", "step img/s", "ratio", "loop img/s", "wait_share"]
    rows = [
        [
            r["workers"],
            r["loader_img_s"],
            r["step_img_s"],
            r["ratio"],
            r["loop_img_s"],
            r["wait_share"],
        ]
        for r in res.rows
    ]
    lines += [md_table(header, rows), "", consumption_line(ctx)]
    return "\n".join(lines)


def consumption_line(ctx: Context) -> str:
    """The loader's images/s beside what stage 3's bf16 S4GAN step consumes."""
    entry = ctx.results["step"].data.get("by_amp", {}).get("bf16")
    if entry is None:
        return "The S4GAN step's consumption is not known: the step stage measured no bf16 step."
    preset, ours = ctx.settings.step_preset, entry["rows"]["s4seg"]
    # Three loaders feed an S4GAN step: labelled, unlabelled and the discriminator's.
    need = 3 * preset["batch"] * float(ours["steps_per_s"])
    best = max(float(r["loader_img_s"]) for r in ctx.results["loader"].rows)
    return (
        f"The {preset['backbone']} S4GAN step of stage 3 ({precision(entry['ran'])}) draws 3 batches of "
        f"{preset['batch']} at {ours['steps_per_s']} steps/s: {need:.0f} images/s at "
        f"{preset['size']} px. The loader delivered up to {best:.0f} images/s at "
        f"{ctx.settings.loader.size} px (PNG decoding)."
    )


def run_section(ctx: Context) -> str:
    res, cfg = ctx.results["run"], ctx.settings.run
    lines = ["## 5. S4GAN run through the Trainer", ""]
    recorder = res.data.get("recorder")
    if recorder is None or not res.rows:
        return "\n".join([*lines, f"Nothing measured: {stage_gap(res)}."])
    warm = WARMUP_STEPS if recorder.train_steps(after=WARMUP_STEPS) else 0
    steady = recorder.train_steps(after=warm)
    median = f"{statistics.median(steady):.3f} s" if steady else "–"
    lines.append(
        f"{cfg.backbone} at {cfg.size} px, batch {cfg.batch}, "
        f"{precision(res.data.get('amp_ran', 'none'))}, channels-last {cfg.channels_last}, "
        f"{cfg.workers} workers per loader, lr {cfg.lr}; val mIoU on {cfg.val_size} images "
        f"every {cfg.eval_every} steps. Median step {median}"
        + (f" after the first {warm} steps" if warm else "")
        + " (the curve's s/step is the mean since the previous evaluation, evaluations "
        "excluded).\n"
    )
    header = ["step", "val mIoU", "s/step", "eval s", "data_wait_frac (max)", "peak MiB"]
    rows = [
        [
            r["step"],
            r["val_miou"],
            r["s_per_step"],
            r["eval_s"],
            r["data_wait_frac"],
            r["gpu_mem_peak_mib"],
        ]
        for r in res.rows
    ]
    return "\n".join([*lines, md_table(header, rows)])


def skipped_section(ctx: Context) -> str:
    """Everything that did not run, or ran only in part, with the reason."""
    items = [
        f"- stage {r.name}: {r.status}" + (f" ({'; '.join(r.notes)})" if r.notes else "")
        for r in ctx.results.values()
        if r.status != "ok"
    ]
    kernel = ctx.results["kernel"].rows
    for provider, note in sorted(
        {(str(r["provider"]), str(r.get("note", ""))) for r in kernel if r.get("status") != "ok"}
    ):
        items.append(f"- kernel provider {provider}: {note}")
    for reason in ctx.results["correctness"].data.get("skips", []):
        items.append(f"- test skipped: {reason}")
    if ctx.dry_run:
        items.append("- the tests were only collected, not run: the dry run checks the wiring")
    for amp, entry in ctx.results["step"].data.get("by_amp", {}).items():
        if entry["ran"] != amp:
            items.append(f"- step {amp} ran in {precision(entry['ran'])}: autocast is CUDA-only")
    return "## Skipped\n\n" + ("\n".join(items) if items else "Nothing.")


def render_summary(ctx: Context, goals: list[Goal], wall_s: float) -> str:
    parts = [header_section(ctx, wall_s), goals_section(goals), stages_section(ctx)]
    for section in (
        correctness_section,
        kernel_section,
        step_section,
        loader_section,
        run_section,
        skipped_section,
    ):
        try:
            parts.append(section(ctx))
        except Exception as exc:  # one broken section must not lose the others
            parts.append(f"## {section.__name__}\n\nCould not render: {first_line(exc)}")
    return "\n\n".join(parts) + "\n"
