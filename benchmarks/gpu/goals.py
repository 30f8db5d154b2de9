"""The goals: each measured figure against its target, PASS, MISS or NOT MEASURED."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.gpu.runner import Context, StageResult, first_line

GOAL_BANDWIDTH = "fused op fwd+bwd: share of the bandwidth bound"
GOAL_EAGER = "fused op fwd+bwd: speed-up over the eager reference"
GOAL_COMPILE = "fused op fwd+bwd: speed-up over torch.compile"
GOAL_STEP = "whole S4GAN step in bf16: speed-up over the unfused step"
GOAL_RUN_WAIT = "data loading never the bottleneck: data_wait_frac of the run"
GOAL_LOADER_WAIT = "data loading never the bottleneck: loader loop wait_share"
GOALS = (GOAL_BANDWIDTH, GOAL_EAGER, GOAL_COMPILE, GOAL_STEP, GOAL_RUN_WAIT, GOAL_LOADER_WAIT)
BANDWIDTH_TARGET, EAGER_TARGET, COMPILE_TARGET = 0.85, 3.0, 1.3
STEP_TARGET, WAIT_TARGET = 1.1, 0.05


@dataclass(frozen=True)
class Goal:
    """One goal of the issue, for one case: what was measured and whether it was met."""

    name: str
    case: str
    target: str
    measured: str = "–"
    result: str = "NOT MEASURED"  # PASS, MISS or NOT MEASURED
    note: str = ""


def precision(amp: str) -> str:
    """ "fp32" for no autocast, else the autocast dtype."""
    return "fp32" if amp == "none" else amp


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def stage_gap(res: StageResult) -> str:
    """Why a stage has nothing for a goal: its status and notes."""
    notes = "; ".join(res.notes)
    return f"the {res.name} stage is {res.status}" + (f" ({notes})" if notes else "")


def kernel_goals(ctx: Context) -> list[Goal]:
    """Bandwidth share and speed-ups of the fused op's full mode on the goal shapes."""
    res = ctx.results["kernel"]
    full = {
        (r["batch"], r["classes"], r["height"], r["width"], r["dtype"], r["provider"]): r
        for r in res.rows
        if r.get("mode") == "full"
    }
    goals: list[Goal] = []
    for shape, dtype in ctx.settings.kernel_goal_cases:
        case = f"{shape} {dtype}"
        rows = {
            p: full.get((shape.b, shape.c, shape.h, shape.w, dtype, p))
            for p in ("eager", "compile", "triton")
        }
        goals.append(bandwidth_goal(case, rows["triton"], res))
        goals.append(ratio_goal(GOAL_EAGER, case, rows["eager"], rows["triton"], EAGER_TARGET, res))
        goals.append(
            ratio_goal(GOAL_COMPILE, case, rows["compile"], rows["triton"], COMPILE_TARGET, res)
        )
    return goals


def missing_row(row: dict[str, object] | None, res: StageResult) -> str | None:
    """Why ``row`` has no time (None when it has one)."""
    if row is None:
        return stage_gap(res) if res.status != "ok" else "no row for this case"
    if row.get("status") != "ok":
        return f"{row['provider']} skipped: {row.get('note', '')}"
    return None


def bandwidth_goal(case: str, tri: dict[str, object] | None, res: StageResult) -> Goal:
    target = f">= {BANDWIDTH_TARGET:.0%} of the copy bandwidth"
    gap = missing_row(tri, res)
    if gap is not None or tri is None:
        return Goal(GOAL_BANDWIDTH, case, target, note=gap or "")
    share = float(tri["frac_of_copy"])  # type: ignore[arg-type]
    measured = f"{share:.0%} ({tri['gbps']} of {tri['copy_gbps']} GB/s)"
    return Goal(GOAL_BANDWIDTH, case, target, measured, verdict(share >= BANDWIDTH_TARGET))


def ratio_goal(
    name: str,
    case: str,
    base: dict[str, object] | None,
    tri: dict[str, object] | None,
    target: float,
    res: StageResult,
) -> Goal:
    want = f">= {target}x"
    gap = missing_row(tri, res) or missing_row(base, res)
    if gap is not None or base is None or tri is None:
        return Goal(name, case, want, note=gap or "")
    ratio = float(base["ms_p50"]) / float(tri["ms_p50"])  # type: ignore[arg-type]
    measured = f"{ratio:.2f}x ({base['ms_p50']} vs {tri['ms_p50']} ms)"
    return Goal(name, case, want, measured, verdict(ratio >= target))


def step_goal(ctx: Context) -> Goal:
    res, preset = ctx.results["step"], ctx.settings.step_preset
    case = f"{preset['backbone']} B={preset['batch']} {preset['size']}px, channels-last"
    want = f">= {STEP_TARGET}x"
    entry = res.data.get("by_amp", {}).get("bf16")
    if entry is None:
        return Goal(GOAL_STEP, case, want, note=stage_gap(res))
    ours, unfused = entry["rows"]["s4seg"], entry["rows"]["unfused"]
    ratio = float(unfused["ms_p50"]) / float(ours["ms_p50"])
    measured = f"{ratio:.2f}x ({ours['ms_p50']} vs {unfused['ms_p50']} ms)"
    if entry["ran"] != "bf16":
        return Goal(
            GOAL_STEP,
            case,
            want,
            f"{measured} in {precision(entry['ran'])}",
            note="bf16 autocast is CUDA-only: the step ran in fp32",
        )
    return Goal(GOAL_STEP, case, want, measured, verdict(ratio >= STEP_TARGET))


def run_wait_goal(ctx: Context) -> Goal:
    """The run's data_wait_frac, the worst log window after the first (worker start-up)."""
    res, cfg = ctx.results["run"], ctx.settings.run
    case = f"{cfg.backbone} {cfg.size}px B={cfg.batch}, {cfg.workers} workers per loader"
    want = f"< {WAIT_TARGET:.0%} in every log window"
    recorder = res.data.get("recorder")
    waits = [r["data_wait_frac"] for r in recorder.logs] if recorder else []
    if not waits:
        return Goal(GOAL_RUN_WAIT, case, want, note=stage_gap(res))
    steady = waits[1:] or waits
    worst = max(steady)
    measured = f"max {worst:.1%} over {len(steady)} windows (first window {waits[0]:.1%})"
    return Goal(GOAL_RUN_WAIT, case, want, measured, verdict(worst < WAIT_TARGET))


def loader_goals(ctx: Context) -> list[Goal]:
    res = ctx.results["loader"]
    want = f"< {WAIT_TARGET:.0%}"
    if not res.rows:
        return [Goal(GOAL_LOADER_WAIT, "all worker counts", want, note=stage_gap(res))]
    goals = []
    for row in res.rows:
        wait = float(row["wait_share"])  # type: ignore[arg-type]
        case = f"{row['workers']} workers, {row['size']}px B={row['batch']}, {row['model']}"
        goals.append(Goal(GOAL_LOADER_WAIT, case, want, f"{wait:.1%}", verdict(wait < WAIT_TARGET)))
    return goals


def all_goals(ctx: Context) -> list[Goal]:
    """Every goal line; one that cannot be judged says why instead of raising."""
    goals: list[Goal] = []
    for make in (kernel_goals, step_goal, run_wait_goal, loader_goals):
        try:
            made = make(ctx)
        except Exception as exc:  # a malformed row must not cost the summary
            made = Goal(make.__name__, "–", "–", note=f"could not judge: {first_line(exc)}")
        goals += made if isinstance(made, list) else [made]
    return goals
