"""S4GAN's MLMT branch: a class-presence classifier trained beside any method."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_resume_is_bit_identical, make_trainer
from torch.utils.data import Subset

from s4seg.data import InfiniteLoader, SyntheticShapes, Unlabelled
from s4seg.methods import MLMT, S4GAN
from s4seg.models import MultiLabelClassifier, mask_absent_classes, presence_targets


def test_presence_targets_leave_ignore_pixels_out():
    mask = torch.tensor([[[0, 2], [255, 2]], [[1, 1], [1, 255]]])
    assert presence_targets(mask, 3).tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]


def test_absent_classes_can_never_win_and_background_stays():
    logits = torch.tensor([[-5.0, -1.0, -3.0]]).view(1, 3, 1, 1).expand(1, 3, 2, 2).clone()
    presence = torch.tensor([[False, False, True]])
    out = mask_absent_classes(logits, presence)
    # Class 1, the argmax before, is removed; class 2 (present, -3) beats background (-5,
    # always kept). The original's multiply-by-0 would have turned class 1's -1 into 0
    # (and background's -5 into 0 too), so class 1 would still win.
    assert out.argmax(1).unique().tolist() == [2]
    assert torch.equal(out[:, 2], logits[:, 2])
    assert (out[:, 1] == torch.finfo(out.dtype).min).all()
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        mask_absent_classes(logits, presence[:, :2])


def mlmt_loader():
    data = SyntheticShapes(24, image_size=32, seed=0)
    return InfiniteLoader(Unlabelled(Subset(data, range(8, 24))), 2, seed=9)


def with_branch(**kwargs):
    t = make_trainer(
        method_object=MLMT(S4GAN(), classifier_name="test_resnet", **kwargs), max_steps=4
    )
    t.loaders["mlmt"] = mlmt_loader()
    return t


def test_the_segmentation_trains_exactly_as_without_the_branch():
    plain = make_trainer(method_object=S4GAN(), max_steps=4)
    plain.fit()
    with pytest.raises(ValueError, match=r"loaders\['mlmt'\]"):
        make_trainer(method_object=MLMT(S4GAN(), classifier_name="test_resnet"))
    t = make_trainer(
        method_object=MLMT(S4GAN(), classifier_name="test_resnet"),
        max_steps=4,
        extra_loaders={"mlmt": mlmt_loader()},
    )
    before = [p.clone() for p in t.method.classifier.parameters()]
    t.fit()
    for a, b in zip(plain.generator.parameters(), t.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(
        plain.method.discriminator.parameters(),
        t.method.modules()["discriminator"].parameters(),
        strict=True,
    ):
        assert torch.equal(a, b)
    after = list(t.method.classifier.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))  # it learnt


def test_evaluations_report_the_filtered_miou_and_presence_accuracy():
    t = make_trainer(
        method_object=MLMT(S4GAN(), classifier_name="test_resnet"),
        max_steps=3,
        eval_interval=3,
        extra_loaders={"mlmt": mlmt_loader()},
    )
    logs = t.train_step()
    assert "loss_mlmt_cls" in logs and "loss_mlmt_cons" in logs
    t.fit()
    record = {**t.evaluate(), **t.method.diagnose(t)}
    assert 0.0 <= record["mlmt_miou"] <= 1.0 and 0.0 <= record["mlmt_presence_accuracy"] <= 1.0
    assert "d_auc_accuracy" in record  # the wrapped method's own diagnostic is kept
    assert t.method.describe()["settings"]["mlmt_presence_threshold"] == 0.2


def test_resume_is_bit_identical(tmp_path):
    def factory():
        return MLMT(S4GAN(), classifier=MultiLabelClassifier("test_resnet", 6))

    assert_resume_is_bit_identical(tmp_path, factory, extra_loaders=lambda: {"mlmt": mlmt_loader()})
