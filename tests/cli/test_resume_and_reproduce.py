"""``RUN_DIR/config.yaml`` trains the same run again, and ``--resume RUN_DIR`` continues
an interrupted run to exactly the weights of an uninterrupted one."""

from __future__ import annotations

import pytest
import torch

import s4seg.callbacks
from s4seg.cli.main import main
from s4seg.training import Callback, read_checkpoint


def weights(run) -> dict[str, torch.Tensor]:
    state = read_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 4
    return {
        **state["generator"],
        **{f"d.{k}": v for k, v in state["method"]["discriminator"].items()},
    }


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class StopAt(Callback):
    """Ctrl-C after step ``step``, as a user would press it."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.step:
            raise KeyboardInterrupt


def test_config_yaml_reproduces_and_resume_is_exact(trained_run, tmp_path, monkeypatch, capsys):
    run, _ = trained_run
    again = tmp_path / "again"
    assert main(["train", str(run / "config.yaml"), f"--out={again}"]) == 0
    assert_same(weights(run), weights(again))

    stopped = tmp_path / "stopped"
    plain = s4seg.callbacks.default_callbacks
    monkeypatch.setattr(
        s4seg.callbacks, "default_callbacks", lambda *a, **k: [*plain(*a, **k), StopAt(2)]
    )
    assert main(["train", str(run / "config.yaml"), f"--out={stopped}"]) == 130
    assert f"continue with: s4seg train --resume {stopped}" in capsys.readouterr().out
    monkeypatch.setattr(s4seg.callbacks, "default_callbacks", plain)
    assert main(["train", "--resume", str(stopped)]) == 0
    assert f"resuming {stopped} from step 2" in capsys.readouterr().out
    assert_same(weights(run), weights(stopped))


def test_print_config_shows_every_key_with_overrides(capsys) -> None:
    assert main(["train", "deeplabv2_s4gan", "--print-config", "--trainer.max_steps=7"]) == 0
    out = capsys.readouterr().out
    assert "  max_steps: 7\n" in out and "  grad_clip: null\n" in out
    assert "name: deeplabv2_resnet101" in out and "threshold: 0.2" in out


@pytest.mark.parametrize("name", ["cpu_small", "deeplabv2_s4gan"])
def test_shipped_configs_parse(name, capsys) -> None:
    assert main(["train", name, "--print-config"]) == 0
    assert "class_path: s4seg" in capsys.readouterr().out


def test_configs_lists_and_shows_the_shipped_configs(capsys) -> None:
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cpu_small ") and "deeplabv2_s4gan  S4GAN with DeepLabV2" in out
    assert main(["configs", "--show", "cpu_small"]) == 0
    assert "name: test_efficientnet" in capsys.readouterr().out
