"""From an empty folder to a trained model through the commands alone: make a folder
dataset, ``s4seg train`` a shipped config for 4 steps, ``s4seg eval``, ``s4seg predict``
on three images of different sizes, ``s4seg report``."""

from __future__ import annotations

import json

import numpy as np
import yaml
from PIL import Image

from s4seg.cli.main import main


def test_train_eval_predict_report(workdir, trained_run, capsys) -> None:
    run, proc = trained_run
    # train: the run folder holds the resolved config, logs and both checkpoints.
    assert "best val mIoU" in proc.stdout and "trained 4 steps: runs/tiny" in proc.stdout
    for name in ("config.yaml", "config.json", "metrics.jsonl", "checkpoints/last.pt",
                 "checkpoints/best.pt"):  # fmt: skip
        assert (run / name).is_file(), name
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["trainer"]["max_steps"] == 4 and config["model"]["name"] == "test_efficientnet"
    assert config["trainer"]["grad_clip"] is None  # every default is written out
    assert config["method"]["init_args"]["fake_sharpen"] == 0.5  # from the shipped config
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [2, 4]

    # eval: the table with class names, metrics.json and the confusion plot.
    assert main(["eval", str(run), "--flip"]) == 0
    out = capsys.readouterr().out
    assert "| stripe" in out and "mIoU" in out and "pixel accuracy" in out
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(metrics["iou_by_class"]) == {"background", "square", "stripe"}
    assert 0.0 <= metrics["miou"] <= 1.0 and metrics["images"] == 4
    assert np.asarray(metrics["confusion"]).sum() == 4 * 48 * 48
    assert Image.open(run / "eval" / "confusion.png").format == "PNG"

    # predict: three new images of different sizes, masks at each one's size.
    sizes = [(40, 40), (57, 83), (100, 31)]  # (H, W)
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate(sizes):
        paths.append(workdir / f"new_{i}.jpg")
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    argv = ["predict", str(run), *map(str, paths), "--out", str(workdir / "preds"), "--probs"]
    assert main(argv) == 0
    assert "wrote 3 masks and probability maps" in capsys.readouterr().out
    for i, (h, w) in enumerate(sizes):
        mask = Image.open(workdir / "preds" / f"new_{i}.png")
        assert mask.mode == "P" and mask.size == (w, h)
        assert np.asarray(mask).max() < 3
        probs = np.load(workdir / "preds" / f"new_{i}.npy")
        assert probs.shape == (3, h, w)
        np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
        assert (probs.argmax(0) == np.asarray(mask)).all()

    # report: the doctor reads the run folder.
    assert main(["report", str(run), "--no-plots"]) == 0
    assert "report.md" in capsys.readouterr().out
    assert (run / "report.md").read_text().strip()


def test_sliding_window_and_flip_agree_in_shape(trained_run, workdir, capsys) -> None:
    run, _ = trained_run
    out = workdir / "eval_tiled"
    assert main(["eval", str(run), "--tile", "24", "--out", str(out)]) == 0
    assert "tile 24" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["tile"] == 24
