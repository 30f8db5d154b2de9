"""Finding: one problem, stated so that it can be acted on."""

from __future__ import annotations

import pytest

from s4seg.doctor import Finding


def finding(**kw) -> Finding:
    base = dict(
        code="st_starved",
        severity="warning",
        title="self-training starved",
        seen="0 of 400 images kept",
        cause="D rejects every prediction",
        remedies=["S4GAN(lr_d=2.5e-05): slow D down", "TargetRateGate(rate=0.5): rank"],
        first_step=1600,
        last_step=2000,
        evidence={"steps": 400},
    )
    return Finding(**{**base, **kw})


def test_key_is_code_and_first_step_whatever_the_growth():
    assert finding().key == finding(last_step=5000, seen="more").key == ("st_starved", 1600)


def test_dict_round_trip_ignores_extra_keys():
    f = finding()
    assert Finding.from_dict({**f.to_dict(), "kind": "finding", "step": 9}) == f


def test_text_and_markdown_put_the_setting_first():
    f = finding()
    assert f.steps() == "steps 1600-2000" and finding(last_step=1600).steps() == "step 1600"
    text = f.format()
    assert text.splitlines()[0] == "[WARNING] st_starved: self-training starved (steps 1600-2000)"
    assert "    - S4GAN(lr_d=2.5e-05): slow D down" in text
    assert "- `S4GAN(lr_d=2.5e-05)`: slow D down" in f.markdown()


def test_severity_is_checked():
    with pytest.raises(ValueError, match="severity must be one of"):
        finding(severity="fatal")


def test_how_sure_is_said_and_old_findings_still_load():
    f = finding(confidence="medium: 3 log windows in a row over 300 steps")
    assert "  how sure: medium: 3 log windows" in f.format()
    assert "**How sure.** medium: 3 log windows" in f.markdown()
    old = {k: v for k, v in f.to_dict().items() if k != "confidence"}  # a 0.2.0 doctor.jsonl
    assert Finding.from_dict(old).confidence == ""
    assert "How sure" not in Finding.from_dict(old).markdown()
