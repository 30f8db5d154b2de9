"""The Doctor callback: run the monitors while training, report each finding once, act on request."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s4seg.callbacks import Callback, run_config
from s4seg.doctor.findings import Finding
from s4seg.doctor.monitors import Monitor, default_monitors, run_monitors
from s4seg.doctor.records import auto_duration_steps
from s4seg.jsonl import append_jsonl, read_jsonl, rewrite_jsonl

if TYPE_CHECKING:
    from s4seg.training.trainer import Trainer

__all__ = ["Doctor"]

logger = logging.getLogger("s4seg.doctor")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


class Doctor(Callback):
    """Watches a run through its log records and says what is going wrong, and why.

    At every log step and evaluation the monitors check the records so far; each
    new finding (new :attr:`Finding.key`) is logged once on the ``"s4seg.doctor"``
    logger (critical and warning findings reach stderr without any logging set-up)
    and appended to ``run_dir/doctor.jsonl`` as first seen; :attr:`findings` holds
    the latest numbers of each (a problem that goes on keeps its key and grows).

    Actions are opt-in:

    * ``rollback=True``: on a finding whose code is in ``rollback_on`` (a dominant
      discriminator, a gate starved by it, val mIoU falling), reload the weights of
      the best checkpoint with :meth:`Trainer.restore_best` (a :class:`Checkpointer`
      must be among the callbacks) and continue with a slower discriminator: every
      parameter group of the method's discriminator optimizer gets its ``base_lr`` (and current
      ``lr``) multiplied by ``lr_d_factor``, and the discriminator's optimizer state
      (Adam moments of the discriminator that won) is cleared. The step, the
      learning-rate schedule, the loaders and ``trainer.config`` are left as they
      are; the new ``base_lr`` is saved in later checkpoints with the optimizer's
      state. Only a best checkpoint saved before the problem began is restored (one
      saved later holds the problem itself); without one the rollback is skipped
      and recorded as such. At most ``max_rollbacks`` rollbacks.
    * ``early_stop=True``: on a finding whose severity (or code) is in ``stop_on``,
      set ``trainer.should_stop`` (after any rollback has been used up).

    Args:
        monitors: the checks; default :func:`default_monitors` with ``duration_steps``.
        run_dir: folder for ``doctor.jsonl``; on resume, its records up to the
            resumed step seed the history (findings already reported stay quiet).
        duration_steps: scales the step-based limits of the default monitors; None
            (the default): from the run's ``max_steps`` and ``log_interval`` when
            training starts (:func:`s4seg.doctor.records.auto_duration_steps`: a
            quarter of the run, at least three log windows, at most 500).
        early_stop: stop training on a ``stop_on`` finding.
        stop_on: severities and/or codes that stop the run.
        rollback: restore the best checkpoint on a ``rollback_on`` finding.
        rollback_on: codes that trigger a rollback.
        lr_d_factor: multiplier of the discriminator's learning rate at a rollback.
        max_rollbacks: rollbacks allowed in one run.
    """

    def __init__(
        self,
        monitors: Sequence[Monitor] | None = None,
        *,
        run_dir: str | Path | None = None,
        duration_steps: int | None = None,
        early_stop: bool = False,
        stop_on: Iterable[str] = ("critical",),
        rollback: bool = False,
        rollback_on: Iterable[str] = ("d_dominant", "st_starved", "val_miou_falling"),
        lr_d_factor: float = 0.1,
        max_rollbacks: int = 1,
    ) -> None:
        if not lr_d_factor > 0.0:  # also rejects NaN
            raise ValueError(f"lr_d_factor must be > 0, got {lr_d_factor}; 0.1 slows D 10x")
        if max_rollbacks < 0:
            raise ValueError(f"max_rollbacks must be >= 0, got {max_rollbacks}")
        # Without monitors or duration_steps, on_fit_start sizes the defaults to the run.
        self._auto_duration = monitors is None and duration_steps is None
        self.monitors = (
            list(monitors) if monitors is not None else default_monitors(duration_steps or 500)
        )
        for m in self.monitors:
            if not callable(getattr(m, "check", None)):
                raise TypeError(f"monitors must have a check(history) method, got {m!r}")
        self.path = Path(run_dir) / "doctor.jsonl" if run_dir is not None else None
        self.early_stop, self.stop_on = early_stop, frozenset(stop_on)
        self.rollback, self.rollback_on = rollback, frozenset(rollback_on)
        self.lr_d_factor, self.max_rollbacks = float(lr_d_factor), int(max_rollbacks)
        self.history: list[dict[str, Any]] = []
        self.findings: list[Finding] = []
        self.actions: list[dict[str, Any]] = []
        self._seen: set[tuple[str, int]] = set()

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: Trainer) -> None:
        if self.history:  # a second fit() on the same trainer: keep going
            return
        self.history.append({"kind": "config", **run_config(trainer)})
        if self._auto_duration:
            self.monitors = default_monitors(auto_duration_steps(self.history))
        if self.path is not None:
            self._resume(self.path, trainer.step)

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.history.append({"kind": "train", **record})
        self._check(trainer)

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.history.append({"kind": "eval", **metrics})
        self._check(trainer)

    # ------------------------------------------------------------------ work
    def check(self) -> list[Finding]:
        """All findings on the history so far (reported or not)."""
        return run_monitors(self.history, self.monitors)

    def _check(self, trainer: Trainer) -> None:
        for finding in self.check():
            if finding.key in self._seen:
                # The same problem, grown: keep its latest numbers, say nothing new.
                self.findings = [finding if f.key == finding.key else f for f in self.findings]
                continue
            self._seen.add(finding.key)
            self.findings.append(finding)
            logger.log(_LEVELS[finding.severity], "%s", finding.format())
            self._write({"kind": "finding", "step": trainer.step, **finding.to_dict()})
            self._act(trainer, finding)

    def _act(self, trainer: Trainer, finding: Finding) -> None:
        rollbacks = sum(a["action"] == "rollback" for a in self.actions)
        wants = self.rollback and self._wants_rollback(finding)
        if wants and rollbacks < self.max_rollbacks and self._rollback(trainer, finding):
            return
        if self.early_stop and (finding.severity in self.stop_on or finding.code in self.stop_on):
            trainer.should_stop = True
            self._record(trainer, "early_stop", finding, {})
            logger.warning("doctor: stopping the run at step %d (%s)", trainer.step, finding.code)

    def _wants_rollback(self, finding: Finding) -> bool:
        if finding.code not in self.rollback_on:
            return False
        # A slower discriminator cures a gate that starves because D rejects everything,
        # not a pixel threshold that is too high.
        return finding.code != "st_starved" or finding.evidence.get("cause") == "image_gate"

    def _rollback(self, trainer: Trainer, finding: Finding) -> bool:
        """Restore the best checkpoint saved before ``finding`` began; False when there is none."""
        # A checkpoint saved after the problem began holds the problem (a discriminator
        # that already wins): restoring it and slowing it down only freezes that state.
        if not 0 <= trainer.best_step < finding.first_step:
            reason = (
                f"the best checkpoint is from step {trainer.best_step}"
                if trainer.best_step >= 0
                else "no best checkpoint yet"
            )
            self._record(trainer, "rollback_skipped", finding, {"reason": reason})
            logger.warning(
                "doctor: no rollback for %s: it began at step %d and %s; evaluate more often "
                "(TrainerConfig(eval_interval=...)) to keep a checkpoint from before it",
                finding.code,
                finding.first_step,
                reason,
            )
            return False
        try:
            restored = trainer.restore_best()
        except FileNotFoundError as err:
            self._record(trainer, "rollback_skipped", finding, {"reason": str(err)})
            logger.warning("doctor: no rollback for %s: %s", finding.code, err)
            return False
        changes: dict[str, Any] = {"restored_step": restored}
        opt = trainer.method.optimizers().get("d")
        if opt is not None:
            before, after = [], []
            for group in opt.param_groups:
                base = group.setdefault("base_lr", group["lr"])
                before.append(base)
                group["base_lr"] = base * self.lr_d_factor
                group["lr"] = group["lr"] * self.lr_d_factor
                after.append(group["base_lr"])
            # The moments belong to the discriminator that won; the restored one starts afresh.
            opt.state.clear()
            changes.update(d_base_lr_before=before, d_base_lr_after=after, d_state_cleared=True)
        self._record(trainer, "rollback", finding, changes)
        logger.warning(
            "doctor: step %d: restored the best checkpoint (step %d) and scaled the "
            "discriminator's lr by %g after %s",
            trainer.step,
            restored,
            self.lr_d_factor,
            finding.code,
        )
        return True

    def _record(
        self, trainer: Trainer, action: str, finding: Finding, changes: dict[str, Any]
    ) -> None:
        entry = {
            "kind": "action",
            "step": trainer.step,
            "action": action,
            "because": finding.code,
            **changes,
        }
        self.actions.append(entry)
        self._write(entry)

    # ------------------------------------------------------------------ files
    def _write(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_jsonl(self.path, entry)

    def _resume(self, path: Path, step: int) -> None:
        """Seed the history from the run's logs up to ``step``; keep old findings quiet."""
        metrics = path.parent / "metrics.jsonl"
        if step > 0 and metrics.exists():
            self.history += [r for r in read_jsonl(metrics) if r.get("step", 0) <= step]
        if not path.exists():
            return
        # Entries after the resumed step were written by a run that then crashed.
        keep = [e for e in read_jsonl(path) if e.get("step", 0) <= step]
        for entry in keep:
            if entry.get("kind") == "finding":
                finding = Finding.from_dict(entry)
                self._seen.add(finding.key)
                self.findings.append(finding)
            elif entry.get("kind") == "action":
                self.actions.append(entry)
        rewrite_jsonl(path, keep)
