"""The learning-quality benchmark's wiring and its report's arithmetic (not its results)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from benchmarks.quality import report, run


def _row(method: str, split: str, seed: int, test: float) -> dict[str, object]:
    return {f: "" for f in run.FIELDS} | {
        "preset": "default", "method": method, "split": split, "seed": seed,
        "labelled": 125, "test_miou": test, "seconds": 1.0, "st_pixels_frac": 0.5,
        "d_auc_accuracy": 0.5, "d_auc_entropy": 0.9, "device": "cpu", "git_sha": "x",
        "steps": 10, "threads": 2,
    }  # fmt: skip


def _write_csv(tmp_path, rows) -> object:
    path = tmp_path / "r.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=run.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_summary_gap_recovered_and_paired_deltas(tmp_path) -> None:
    rows = [
        _row("full", "full", 0, 0.50), _row("full", "full", 1, 0.50),
        _row("supervised", "1/16", 0, 0.30), _row("supervised", "1/16", 1, 0.34),
        _row("s4gan_static", "1/16", 0, 0.36), _row("s4gan_static", "1/16", 1, 0.32),
    ]  # fmt: skip
    summary = report.summarise(report.read_rows(_write_csv(tmp_path, rows), "default"))
    s4 = summary["1/16"]["s4gan_static"]
    # Means 0.34 vs 0.32 against full 0.50: (0.34 - 0.32) / (0.50 - 0.32) = 1/9.
    assert s4["mean"] == pytest.approx(0.34)
    assert s4["std"] == pytest.approx(math.sqrt(0.0008))
    assert s4["recovered"] == pytest.approx(0.02 / 0.18)
    assert s4["delta"] == pytest.approx(0.02)  # paired: +0.06 and -0.02
    assert s4["worst_delta"] == pytest.approx(-0.02)
    text = report.table(summary)
    assert "| s4gan_static | 2 | 0.3400 ± 0.0283 | +0.0200; -0.0200 | 11 % |" in text
    report.plot(summary, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_quick_run_writes_rows_and_resumes(tmp_path, capsys) -> None:
    out = tmp_path / "q.csv"
    args = ["--quick", "--seeds", "0", "--splits", "1/16", "--out", str(out)]
    run.main([*args, "--methods", "supervised,s4gan_honest"])
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["split"]) for r in rows] == [
        ("supervised", "1/16"), ("s4gan_honest", "1/16"), ("full", "full"),
    ]  # fmt: skip
    assert rows[0]["labelled"] == "10" and rows[2]["labelled"] == "160"
    assert rows[1]["d_auc_accuracy"] != ""
    capsys.readouterr()
    run.main([*args, "--methods", "supervised,s4gan_honest"])  # nothing left to do
    assert "3 of 3 runs already in" in capsys.readouterr().out
    # A row from another machine is not this machine's run: it is run again, beside it.
    rows[1]["device"] = "cuda (NVIDIA H200)"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=run.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    assert run.done_runs(out, "quick", rows[0]["device"]) == {
        ("supervised", "1/16", 0), ("full", "full", 0),
    }  # fmt: skip
    with pytest.raises(SystemExit, match="unknown method"):
        run.main([*args, "--methods", "s4gan_typo"])


def test_convergence_and_calibration_tables(tmp_path) -> None:
    rows = [
        _row("supervised", "1/16", 0, 0.30) | {"preset": "converged", "steps": 4000},
        _row("supervised", "1/16", 0, 0.305) | {"preset": "converged_x2", "steps": 8000},
        _row("supervised", "1/16", 1, 0.20) | {"preset": "converged", "steps": 4000},
        _row("supervised", "1/16", 2, 0.30) | {"preset": "converged", "steps": 4000},
        _row("supervised", "1/16", 2, 0.315) | {"preset": "converged_x2", "steps": 8000},
        # Seed 2 at the budget again on another machine: it pairs with nothing.
        _row("supervised", "1/16", 2, 0.25)
        | {"preset": "converged", "steps": 4000, "device": "cpu (x, AVX512)"},
        _row("full", "full", 0, 0.55) | {"preset": "converged", "steps": 4000},
        _row("full", "full", 0, 0.556) | {"preset": "converged_x2", "steps": 8000},
    ]
    path = tmp_path / "r.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=run.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    text = report.convergence_table(path, "converged", "converged_x2")
    # Seed 1 ran only at the budget: it is left out of both means (paired).
    assert "| supervised-only, 1/16 | 0,2 | 0.3000 | 0.3100 | +0.0100; +0.0150 |" in text
    assert "| full supervision | 0 | 0.5500 | 0.5560 | +0.0060; +0.0060 |" in text
    # Nothing but the bounds at twice the budget: no table of methods there.
    assert report.longer_budget_table(path, "converged_x2") == ""
    cal = tmp_path / "c.csv"
    cal.write_text(
        "config,split,seed,steps,labelled,best_val,best_step,test_best,test_last,seconds,curve\n"
        "a,1/16,0,100,31,0.3,50,0.31,0.3,1,[]\na,full,0,100,500,0.5,100,0.52,0.5,1,[]\n"
    )
    assert "| `a` | 100 | 0.3100 | 0.5200 | +0.2100 |" in report.calibration_table(cal)


def test_the_methods_at_twice_the_budget_pair_with_the_bounds_there(tmp_path) -> None:
    x2 = {"preset": "converged_x2", "steps": 8000}
    rows = [
        _row("supervised", "1/16", 1, 0.30) | x2, _row("supervised", "1/16", 2, 0.28) | x2,
        _row("full", "full", 1, 0.58) | x2, _row("full", "full", 2, 0.56) | x2,
        _row("fixmatch_da_ramp_mild", "1/16", 1, 0.37) | x2,
        _row("fixmatch_da_ramp_mild", "1/16", 2, 0.33) | x2,
        # At the budget, not twice it: left out.
        _row("fixmatch_da_ramp_mild", "1/16", 0, 0.90) | {"preset": "converged"},
    ]  # fmt: skip
    text = report.longer_budget_table(_write_csv(tmp_path, rows), "converged_x2")
    # Paired +0.07 and +0.05 against a gap of 0.57 - 0.29 = 0.28: 21 %.
    assert "| fixmatch_da_ramp_mild | 2 | 0.3500 ± 0.0283 | +0.0600; +0.0500 | 21 % |" in text
    assert "gap to supervised-only: 0.2800" in text


def test_a_partial_benchmark_still_plots(tmp_path) -> None:
    # Mid-run, before any full-supervision row: the plot draws what there is.
    rows = [_row("supervised", "1/16", 0, 0.30), _row("fixmatch", "1/16", 0, 0.31)]
    summary = report.summarise(report.read_rows(_write_csv(tmp_path, rows), "default"))
    assert math.isnan(summary["1/16"]["fixmatch"]["full_mean"])
    report.plot(summary, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_the_doctor_reads_a_run_from_its_curves() -> None:
    # FixMatch's shape at the converged preset: best before self-training starts, then
    # val falls while the kept object pixels are nearly all wrong.
    extra = {
        "kept_frac_curve": [[s, 0.0 if s <= 1300 else 0.97] for s in range(100, 4001, 100)],
        "object_kept_accuracy_curve": [[s, 0.1] for s in range(1400, 4001, 100)],
    }
    val = [[400, 0.37], [800, 0.36], [1200, 0.38], [1600, 0.22], [2000, 0.22], [2400, 0.25]]
    row = _row("fixmatch", "1/16", 0, 0.35) | {"extra": json.dumps(extra),
                                              "val_curve": json.dumps(val)}  # fmt: skip
    history = report.run_history(row)
    assert [r["step"] for r in history if r["kind"] == "eval"] == [400, 800, 1200, 1600, 2000, 2400]
    text = report.collapse_findings([row])
    assert text.startswith("- `fixmatch` 1/16 seed 0: val mIoU was best at step 1200 (0.3800)")
    assert "self-training began after the best evaluation (first pixels kept at step 1400)" in text
    healthy = _row("supervised", "1/16", 0, 0.35) | {"val_curve": json.dumps(val[:3])}
    assert report.collapse_findings([healthy]) == ""


@pytest.mark.parametrize("name", run.METHODS)
def test_every_benchmark_method_builds(name: str) -> None:
    # s4gan_mlmt once fell into the s4gan_<gate> branch and failed mid-protocol.
    method = run.build_method(name, run.PRESETS["quick"], classes=6)
    assert method.name


def test_a_run_pairs_with_supervised_of_its_own_seed_on_its_own_machine(tmp_path) -> None:
    # The same seed trains other weights on another CPU: a rerun of supervised-only on a
    # second machine stands beside the first, and each method run pairs with its own.
    rows = [
        _row("full", "full", 0, 0.50),
        _row("supervised", "1/16", 0, 0.30),
        _row("supervised", "1/16", 0, 0.28) | {"device": "cpu (x, AVX512)"},
        _row("supervised", "1/16", 1, 0.34),
        _row("fixmatch", "1/16", 0, 0.33) | {"device": "cpu (x, AVX512)"},
        _row("fixmatch", "1/16", 1, 0.35) | {"device": "cpu (x, AVX512)"},  # no own pair
    ]
    summary = report.summarise(report.read_rows(_write_csv(tmp_path, rows), "default"))
    sup, fm = summary["1/16"]["supervised"], summary["1/16"]["fixmatch"]
    assert (sup["seeds"], sup["runs"]) == (2, 3)
    assert sup["mean"] == pytest.approx((0.30 + 0.28 + 0.34) / 3)
    # Seed 0 against 0.28 (its machine's), seed 1 against 0.34 (the only one there is).
    assert fm["delta"] == pytest.approx((0.05 + 0.01) / 2)
    assert fm["worst_delta"] == pytest.approx(0.01)
    assert fm["cross_machine"] == 1
    text = report.table(summary)
    assert "| supervised | 2 (3 runs) |" in text
    assert "| fixmatch | 2 | 0.3400 ± 0.0141 | +0.0300; +0.0100 (1 across machines) |" in text


def test_the_machine_label_names_the_cpu_family_and_model(tmp_path) -> None:
    # Two VMs both called "AMD EPYC" with AVX512 trained other weights from one seed.
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
        "model name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 99\n"
    )
    assert run.cpu_name(info) == "AMD EPYC family 26 model 2"
    assert run.cpu_name(tmp_path / "absent") != ""  # elsewhere: the platform's name
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\n")  # no family: not guessed
    assert "family" not in run.cpu_name(info)
