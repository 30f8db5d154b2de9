"""The S4GAN method's step is the step of the trainer issue, written out here in plain code."""

from __future__ import annotations

import torch
from conftest import make_trainer

from s4seg.models.discriminator_inputs import discriminator_input, one_hot_labels
from s4seg.training.lr_schedule import poly_lr_factor
from s4seg.training.optim import set_lr_factor


def _spelled_out_step(t) -> None:
    """CE; predict unlabelled; frozen D; gate + ST (none at step 0); FM; G; then D."""
    cfg, g, d, d_opt = t.config, t.generator, t.method.discriminator, t.method.d_optimizer
    factor = poly_lr_factor(t.step, cfg.max_steps, cfg.poly_power, cfg.warmup_steps)
    set_lr_factor(t.g_optimizer, factor)
    set_lr_factor(d_opt, factor)
    g.train()
    lab = next(t.loaders["labelled"])
    loss_ce = t.ce(g(lab["image"]), lab["mask"])
    d.train()
    img_u = next(t.loaders["unlabelled"])["image"]
    dl = next(t.loaders["d"])
    real_in = discriminator_input(one_hot_labels(dl["mask"], t.num_classes), dl["image"])
    d.requires_grad_(False)
    logits_u = g(img_u)
    probs_u = logits_u.softmax(dim=1)
    fake_logit, fake_feat = d(discriminator_input(probs_u, img_u))
    _, real_feat = d(real_in)
    loss_fm = (real_feat.mean(0) - fake_feat.mean(0)).abs().mean()
    loss_st = torch.zeros(())
    if t.step > 0:
        keep = torch.sigmoid(fake_logit.detach()) > 0.2
        if keep.any():
            target = logits_u.detach().argmax(1)[keep]
            loss_st = torch.nn.functional.cross_entropy(logits_u[keep], target)
    loss_g = loss_ce + 0.1 * loss_fm + 1.0 * loss_st
    t.g_optimizer.zero_grad(set_to_none=True)
    loss_g.backward()
    t.g_optimizer.step()
    d.requires_grad_(True)
    fake_logit, _ = d(discriminator_input(probs_u.detach(), img_u))
    real_logit, _ = d(real_in)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    loss_d = (
        bce(real_logit, torch.ones_like(real_logit)) + bce(fake_logit, torch.zeros_like(fake_logit))
    ) / 2
    d_opt.zero_grad(set_to_none=True)
    loss_d.backward()
    d_opt.step()
    t.step += 1


def test_s4gan_method_step_is_the_specified_step() -> None:
    fitted = make_trainer(seed=5, max_steps=4, eval_interval=100)
    fitted.fit()
    manual = make_trainer(seed=5, max_steps=4, eval_interval=100)
    for _ in range(4):
        _spelled_out_step(manual)
    for a, b in (
        (fitted.generator, manual.generator),
        (fitted.method.discriminator, manual.method.discriminator),
    ):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            # FM's mean |diff| here vs the module: same maths, float rounding may differ.
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
