"""Every remedy the doctor proposes is code that runs against the package as it is.

A remedy reads ``"Setting(...): why"``. The code before the colon is evaluated with the
names a user has after ``import s4seg``; a renamed class or setting raises here, so the
doctor can never recommend something that no longer exists.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from log_streams import collapsing, collapsing_at_onset, field_report, healthy, patch

import s4seg
from s4seg.doctor import Doctor, default_monitors, run_monitors
from s4seg.doctor.remedies import discriminator_remedies, pixel_starved_remedies
from s4seg.training import Trainer


def scenarios():
    """Histories that make every default monitor fire at least once."""
    ln2 = math.log(2.0)
    soft = {"d_auc_entropy": 0.9, "d_auc_accuracy": 0.5}
    full = lambda r: r["st_images_total"]  # noqa: E731
    full_px = lambda r: r["st_pixels_total"]  # noqa: E731
    flooded = patch(healthy(), 500, 1200, st_images_kept=full, st_pixels_kept=full_px)
    return {
        "field_report": field_report(with_d_scores=True),
        "flooded": patch(flooded, 500, 1200, st_pixels_frac=1.0, d_fake_p10=0.45),
        "dominant": patch(healthy(), 1000, 1300, loss_d=0.02, d_fake_p50=0.03, d_real_p50=0.98),
        "collapsed": patch(healthy(), 200, 1500, loss_d=ln2, d_fake_p50=0.5, d_real_p50=0.52),
        "overfit": patch(healthy(), 1001, 1500, train_miou=0.8),
        "nonfinite": patch(
            patch(healthy(), 700, 700, loss_ce=float("nan")), 700, 2000, nonfinite_skipped=3
        ),
        "exploding": patch(healthy(), 1200, 1200, loss_ce=40.0),
        "lr_exhausted": healthy(steps=2000, max_steps=2000),
        "softness": patch(healthy(), 500, 2000, kind="eval", **soft),
        "collapse": collapsing(),
        "collapse_at_onset": collapsing_at_onset(),
    }


def namespace() -> dict:
    """What a user script has: the package's public names, and a trainer."""
    names: dict = {}
    for module in (s4seg, s4seg.filters, s4seg.schedules, s4seg.methods, s4seg.data):
        names.update({n: getattr(module, n) for n in module.__all__})
    names["Doctor"] = Doctor
    # trainer.<method>(...) must name a real Trainer method; it is not run here.
    methods = {n: (lambda *a, **k: None) for n in dir(Trainer) if not n.startswith("_")}
    names["trainer"] = SimpleNamespace(**methods)
    names.update(labelled=[], size=32, C=6)  # placeholders a remedy leaves to the user
    return names


def code_of(remedy: str) -> str:
    code, sep, _ = remedy.partition(": ")
    assert sep, f"a remedy must read 'Setting(...): why', got {remedy!r}"
    return code.replace("(...)", "()").replace("=...", "=1")


def all_remedies() -> list[str]:
    out = []
    for history in scenarios().values():
        for finding in run_monitors(history, default_monitors(200)):
            out += finding.remedies
    out += discriminator_remedies(field_report()) + pixel_starved_remedies(field_report(), 0.95)
    return out


def test_every_monitor_is_exercised() -> None:
    fired = {
        f.code
        for history in scenarios().values()
        for f in run_monitors(history, default_monitors(200))
    }
    assert fired == {m.code for m in default_monitors(200)}


@pytest.mark.parametrize("remedy", sorted(set(all_remedies())))
def test_remedy_code_runs_against_the_package(remedy: str) -> None:
    eval(code_of(remedy), namespace())


def test_a_renamed_setting_would_be_caught() -> None:
    with pytest.raises(TypeError, match="unexpected keyword"):
        eval("S4GAN(no_such_setting=1)", namespace())
    with pytest.raises(TypeError, match="unexpected keyword"):
        eval("TrainerConfig(lr_d=1e-4)", namespace())
