"""The seam: methods see the loop only through the public step context."""

from __future__ import annotations

import ast
from pathlib import Path

import torch
from conftest import make_trainer

from s4seg.methods import Method, StepContext, StepOutput

METHODS_DIR = Path(__file__).resolve().parents[2] / "s4seg" / "methods"


def private_uses(source: str) -> list[str]:
    """``name._attr`` accesses where name is the context or a trainer."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in {"ctx", "trainer", "context"}
        ):
            found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return found


def test_no_method_touches_a_private_member_of_the_loop() -> None:
    offenders = {
        path.name: uses
        for path in sorted(METHODS_DIR.glob("*.py"))
        if (uses := private_uses(path.read_text()))
    }
    assert offenders == {}


def test_the_check_would_catch_one() -> None:
    assert private_uses("def f(ctx):\n    return ctx._g(1)\n") == ["ctx._g (line 2)"]


def test_no_method_imports_the_trainer() -> None:
    for path in METHODS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("s4seg.training"), path.name


def test_the_trainer_is_a_step_context() -> None:
    assert isinstance(make_trainer(method="supervised"), StepContext)


class CountingMethod(Method):
    """A user's own method, written against the context only."""

    name = "counting"
    loaders = ("unlabelled",)

    def setup(self, ctx: StepContext) -> None:
        self.updates = 0

    def generator_loss(self, ctx: StepContext, image, mask) -> StepOutput:
        loss_ce, _ = self.labelled_loss(ctx, image, mask)
        unlabelled = ctx.next_batch("unlabelled")["image"]
        assert unlabelled.device == ctx.device
        return StepOutput(loss_ce, {"loss_extra": loss_ce.detach() * 0}, carry=ctx.step)

    def update(self, ctx: StepContext, output: StepOutput) -> dict:
        assert output.carry == ctx.step  # what generator_loss carried, same step
        self.updates += 1
        return {"loss_seen": torch.tensor(float(self.updates))}

    def settings(self) -> dict:
        return {"kind": "counting"}


def test_a_custom_method_runs_on_the_loop_and_is_recorded() -> None:
    method = CountingMethod()
    t = make_trainer(method_object=method, max_steps=3, log_interval=3)
    logs = t.train_step()
    assert {"loss_ce", "loss_extra", "loss_seen"} <= set(logs)
    t.fit()
    assert method.updates == 4
    assert t.method.describe() == {
        "name": "counting",
        "class": "CountingMethod",
        "settings": {"kind": "counting"},
        "parts": {},
    }


def test_a_method_that_skips_the_cross_entropy_is_told_so() -> None:
    class NoCE(Method):
        name = "no_ce"

        def generator_loss(self, ctx, image, mask):
            return StepOutput(ctx.train_generator(image).sum())

    t = make_trainer(method_object=NoCE())
    try:
        t.train_step()
    except RuntimeError as err:
        assert "supervised_loss" in str(err)
    else:
        raise AssertionError("expected a RuntimeError")
