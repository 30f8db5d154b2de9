"""UniMatch's step, written out as the paper's code writes it, gives the method's weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_resume_is_bit_identical, make_trainer

import s4seg
from s4seg.data.views import StrongView, WeakView, cutmix_boxes
from s4seg.training.lr_schedule import poly_lr_factor
from s4seg.training.optim import set_lr_factor

THRESHOLD = 0.6  # low enough that this young model keeps some pixels


def generator():
    return s4seg.create_generator("test_efficientnet", 6, output_stride=8, head="deeplabv3plus")


def trainer(seed: int = 3, **kwargs):
    torch.manual_seed(seed)
    return make_trainer(
        seed=seed,
        generator=generator(),
        method_object=s4seg.UniMatch(threshold=THRESHOLD, seed=7, **kwargs),
        max_steps=3,
        eval_interval=100,
    )


def spelled_out_step(t, rng: torch.Generator) -> None:
    """UniMatch's unimatch.py, step by step (views drawn in the method's order)."""
    cfg, g = t.config, t.generator
    set_lr_factor(t.g_optimizer, poly_lr_factor(t.step, cfg.max_steps, cfg.poly_power))
    g.train()
    lab = next(t.loaders["labelled"])
    img_x, mask_x = lab["image"], lab["mask"]
    img_u, img_mix = next(t.loaders["unlabelled"])["image"], next(t.loaders["unlabelled"])["image"]
    weak, strong = WeakView(), StrongView()
    img_u_w = weak(img_u, rng)
    img_u_s1, img_u_s2 = strong(img_u_w, rng), strong(img_u_w, rng)
    img_u_w_mix = weak(img_mix, rng)
    img_u_s1_mix, img_u_s2_mix = strong(img_u_w_mix, rng), strong(img_u_w_mix, rng)
    b, _, h, w = img_u_w.shape
    cutmix_box1 = cutmix_boxes(b, h, w, rng, 0.5, (0.02, 0.4))
    cutmix_box2 = cutmix_boxes(b, h, w, rng, 0.5, (0.02, 0.4))
    with torch.no_grad():
        g.eval()
        pred_u_w_mix = g(img_u_w_mix).detach()
        conf_u_w_mix = pred_u_w_mix.softmax(dim=1).max(dim=1)[0]
        mask_u_w_mix = pred_u_w_mix.argmax(dim=1)
    img_u_s1 = img_u_s1.clone()
    img_u_s2 = img_u_s2.clone()
    img_u_s1[cutmix_box1.unsqueeze(1).expand(img_u_s1.shape)] = img_u_s1_mix[
        cutmix_box1.unsqueeze(1).expand(img_u_s1.shape)
    ]
    img_u_s2[cutmix_box2.unsqueeze(1).expand(img_u_s2.shape)] = img_u_s2_mix[
        cutmix_box2.unsqueeze(1).expand(img_u_s2.shape)
    ]
    g.train()
    num_lb = img_x.shape[0]
    preds, preds_fp = g(torch.cat((img_x, img_u_w)), feature_dropout=0.5)
    pred_x, pred_u_w = preds[:num_lb], preds[num_lb:]
    pred_u_w_fp = preds_fp[num_lb:]
    pred_u_s1, pred_u_s2 = g(torch.cat((img_u_s1, img_u_s2))).chunk(2)
    pred_u_w = pred_u_w.detach()
    conf_u_w = pred_u_w.softmax(dim=1).max(dim=1)[0]
    mask_u_w = pred_u_w.argmax(dim=1)
    mask1, conf1 = mask_u_w.clone(), conf_u_w.clone()
    mask2, conf2 = mask_u_w.clone(), conf_u_w.clone()
    mask1[cutmix_box1], conf1[cutmix_box1] = mask_u_w_mix[cutmix_box1], conf_u_w_mix[cutmix_box1]
    mask2[cutmix_box2], conf2[cutmix_box2] = mask_u_w_mix[cutmix_box2], conf_u_w_mix[cutmix_box2]
    valid = float(b * h * w)  # no padding: every pixel is valid
    loss_x = F.cross_entropy(pred_x, mask_x, ignore_index=255)
    loss_u_s1 = (F.cross_entropy(pred_u_s1, mask1, reduction="none") * (conf1 >= THRESHOLD)).sum()
    loss_u_s2 = (F.cross_entropy(pred_u_s2, mask2, reduction="none") * (conf2 >= THRESHOLD)).sum()
    loss_u_w_fp = F.cross_entropy(pred_u_w_fp, mask_u_w, reduction="none") * (conf_u_w >= THRESHOLD)
    loss_u_s1, loss_u_s2, loss_u_w_fp = (
        loss_u_s1 / valid,
        loss_u_s2 / valid,
        loss_u_w_fp.sum() / valid,
    )
    loss = (loss_x + loss_u_s1 * 0.25 + loss_u_s2 * 0.25 + loss_u_w_fp * 0.5) / 2.0
    t.g_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    t.g_optimizer.step()
    t.step += 1


def test_unimatch_step_is_the_papers_step() -> None:
    fitted = trainer()
    fitted.fit()
    manual = trainer()
    rng = torch.Generator().manual_seed(7)
    for _ in range(3):
        spelled_out_step(manual, rng)
    for (name, p), q in zip(
        fitted.generator.state_dict().items(), manual.generator.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    # Self-training did run: the weights differ from a supervised-only run's.
    supervised = make_trainer(seed=3, generator=generator(), method="supervised", max_steps=3)
    supervised.fit()
    assert not torch.allclose(
        next(iter(fitted.generator.parameters())), next(iter(supervised.generator.parameters()))
    )


def test_unimatch_logs_its_terms_and_the_weak_views_counts() -> None:
    t = trainer()
    logs = t.train_step()
    assert {"loss_ce", "loss_st", "loss_fp", "stats", "pixel_threshold"} <= set(logs)
    assert int(logs["stats"].pixels_total) == 2 * 32 * 32


def test_unimatch_resume_is_bit_identical(tmp_path) -> None:
    def factory():
        return s4seg.UniMatch(threshold=THRESHOLD)

    torch.manual_seed(0)
    assert_resume_is_bit_identical(tmp_path, factory, generator_factory=generator, steps=4, stop=2)


def test_a_generator_without_feature_dropout_is_refused() -> None:
    with pytest.raises(TypeError, match="feature_dropout"):
        make_trainer(method_object=s4seg.UniMatch())  # the tiny test net has no such option


def test_a_ramp_scales_the_three_unlabelled_terms() -> None:
    from s4seg.schedules import Constant

    def weights(**kwargs) -> list[torch.Tensor]:
        # Every pseudo-label teaches, so that the three terms have a gradient.
        t = trainer(pseudo_filter=s4seg.filters.PixelConfidenceFilter(0.0), **kwargs)
        t.fit()
        return [p.detach().clone() for p in t.generator.parameters()]

    def same(a, b) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    assert same(weights(ramp=Constant(0.0)), weights(lambda_strong=0.0, lambda_fp=0.0))
    assert same(weights(ramp=Constant(1.0)), weights())  # exactly the paper's step
    assert not same(weights(ramp=Constant(0.5)), weights())
