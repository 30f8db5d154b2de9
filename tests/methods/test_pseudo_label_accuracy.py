"""Kept pseudo-labels measured against the true masks of the unlabelled images."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import Subset

import s4seg
from s4seg.data import InfiniteLoader, SyntheticShapes, Unlabelled, WeakView
from s4seg.filters import PixelConfidenceFilter
from s4seg.methods import SelfTraining
from s4seg.training.log_window import LogWindow


def test_hand_computed_accuracy_overall_on_objects_and_per_class() -> None:
    # Two pixels per class column: confident pseudo-labels [0, 1, 1, 2], truth [0, 1, 2, 2].
    logits = torch.full((1, 3, 1, 4), -10.0)
    for x, c in enumerate([0, 1, 1, 2]):
        logits[0, c, 0, x] = 10.0
    logits[0, :, 0, 3] = 0.0  # the last pixel is unsure: 1/3 confidence, not kept
    truth = torch.tensor([[[0, 1, 2, 2]]])
    st = SelfTraining(PixelConfidenceFilter(0.9), background_index=0)
    st.setup(SimpleNamespace(ignore_index=255))
    _, logs = st(SimpleNamespace(step=0, ignore_index=255), logits, true_mask=truth)
    assert int(logs["stats"].pixels_kept) == 3
    assert int(logs["st_pixels_correct"]) == 2  # pixel 2 says 1, truth 2
    assert int(logs["st_object_pixels_kept"]) == 2 and int(logs["st_object_pixels_correct"]) == 1
    assert logs["st_class_pixels_kept"].tolist() == [1, 2, 0]
    assert logs["st_class_pixels_correct"].tolist() == [1, 1, 0]
    window = LogWindow()
    window.add(logs)
    rec = window.flush()
    assert rec["st_kept_accuracy"] == pytest.approx(2 / 3)
    assert rec["st_object_kept_accuracy"] == pytest.approx(1 / 2)
    assert rec["st_class_pixels_kept"] == [1, 2, 0]


def test_nothing_kept_has_no_accuracy_rather_than_nan() -> None:
    window = LogWindow()
    mask = torch.zeros(1, 2, 2, dtype=torch.bool)
    window.add(
        {"stats": s4seg.ops.PseudoLabelStats.from_mask(mask), "st_pixels_correct": torch.tensor(0)}
    )
    assert window.flush()["st_kept_accuracy"] is None


def test_weak_view_moves_the_mask_with_the_image() -> None:
    torch.manual_seed(0)
    masks = torch.randint(0, 6, (4, 9, 11))
    images = masks[:, None].float().expand(-1, 3, -1, -1).contiguous()
    view = WeakView(flip_p=0.5, scale=(1.0, 1.0))  # flips only: exact on pixel centres
    out, moved = view.transform(images, torch.Generator().manual_seed(1), masks)
    assert torch.equal(out[:, 0].round().long(), moved)
    assert not torch.equal(moved, masks)  # some image was flipped
    again, none = view.transform(images, torch.Generator().manual_seed(1))
    assert torch.equal(again, out) and none is None  # the same draws without masks


class KeepRecords(s4seg.callbacks.Callback):
    def __init__(self) -> None:
        self.records: list[dict] = []

    def on_log(self, trainer, record) -> None:
        self.records.append(record)


def loaders(keep_masks: bool):
    data = SyntheticShapes(24, image_size=32, seed=0)
    unl = Unlabelled(Subset(data, range(8, 24)), keep_masks=keep_masks)
    return InfiniteLoader(Subset(data, range(8)), 2, seed=1), InfiniteLoader(unl, 2, seed=2)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: s4seg.FixMatch(threshold=0.1),
        lambda: s4seg.S4GAN(),
        lambda: s4seg.AdvSemiSeg(start_step=0),
        lambda: s4seg.UniMatch(threshold=0.3),
    ],
    ids=["fixmatch", "s4gan", "advsemiseg", "unimatch"],
)
def test_true_masks_are_measured_and_change_nothing(factory) -> None:
    runs = {}
    for keep in (False, True):
        torch.manual_seed(0)
        gen = s4seg.create_generator("test_efficientnet", 6, output_stride=8, head="deeplabv3plus")
        labelled, unlabelled = loaders(keep)
        t = s4seg.Trainer(
            gen,
            labelled,
            unlabelled_loader=unlabelled,
            loaders={"d": loaders(False)[0]},
            config=s4seg.TrainerConfig(max_steps=3, log_interval=3, device="cpu"),
            method=factory(),
        )
        keep_records = KeepRecords()
        t.callbacks = [keep_records]
        t.fit()
        runs[keep] = (t.generator.state_dict(), keep_records.records[-1])
    (plain, rec_plain), (measured, rec) = runs[False], runs[True]
    assert all(torch.equal(plain[k], measured[k]) for k in plain)
    assert "st_kept_accuracy" not in rec_plain
    assert rec["st_kept_accuracy"] is None or 0.0 <= rec["st_kept_accuracy"] <= 1.0
    assert len(rec["st_class_pixels_kept"]) == 6
    assert sum(rec["st_class_pixels_kept"]) == rec["st_pixels_kept"] > 0


def test_the_keys_written_are_the_keys_documented() -> None:
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "getting-started.md").read_text()
    section = page.split("### Pseudo-label correctness", 1)[1].split("\n### ", 1)[0]
    documented = {
        key
        for line in section.splitlines()
        if line.startswith("| `")
        for key in re.findall(r"`([a-z0-9_]+)`", line.split("|")[1])
    }
    torch.manual_seed(0)
    gen = s4seg.create_generator("test_efficientnet", 6, output_stride=8, head="deeplabv3plus")
    labelled, unlabelled = loaders(True)
    keep = KeepRecords()
    s4seg.Trainer(
        gen,
        labelled,
        unlabelled_loader=unlabelled,
        config=s4seg.TrainerConfig(max_steps=2, log_interval=2, device="cpu"),
        method=s4seg.FixMatch(threshold=0.1),
        callbacks=[keep],
    ).fit()
    plain = {"st_images_kept", "st_images_total", "st_pixels_kept", "st_pixels_total"}
    written = {k for k in keep.records[-1] if k.startswith("st_")} - plain - {"st_pixels_frac"}
    assert written == documented
