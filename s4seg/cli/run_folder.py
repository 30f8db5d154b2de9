"""A trained model from a run folder or a checkpoint in one, for eval, predict and export.

A run folder of ``s4seg train`` holds its resolved ``config.yaml`` (how to rebuild the
generator and normalise its images) and ``checkpoints/best.pt`` / ``last.pt``. Given a
checkpoint elsewhere, the command needs the config that trained it (``--config``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s4seg.cli.errors import CommandError

__all__ = ["TrainedModel", "find_run", "load_trained_model"]

CONFIG_NAME = "config.yaml"


def find_run(path: Path, config: Path | None = None) -> tuple[Path, Path]:
    """``(checkpoint, config.yaml)`` of a run folder or of a checkpoint file.

    A run folder gives ``checkpoints/best.pt`` (else ``last.pt``); a checkpoint file in
    ``RUN_DIR/checkpoints/`` gives ``RUN_DIR/config.yaml``. ``config`` overrides it.
    """
    if path.is_dir():
        candidates = [path / "checkpoints" / n for n in ("best.pt", "last.pt")]
        checkpoint = next((c for c in candidates if c.is_file()), None)
        if checkpoint is None:
            raise CommandError(
                f"{path} is a folder without checkpoints/best.pt or checkpoints/last.pt: pass a "
                "run folder written by s4seg train, or a checkpoint file"
            )
        found = path / CONFIG_NAME
    elif path.is_file():
        checkpoint = path
        found = path.parent.parent / CONFIG_NAME
    else:
        raise CommandError(f"{path}: no such run folder or checkpoint file")
    chosen = config if config is not None else found
    if not chosen.is_file():
        raise CommandError(
            f"no run config for {path}: {found} does not exist; pass the config that trained "
            "it with --config FILE"
        )
    return checkpoint, chosen


@dataclass
class TrainedModel:
    """A generator with its trained weights and what its images need.

    Attributes:
        generator: the network, in eval mode, on the CPU.
        num_classes: classes it predicts.
        class_names: one name per class, or None.
        mean: normalisation mean (RGB, images in [0, 1]).
        std: normalisation standard deviation.
        tile: the run's evaluation tile (``trainer.eval_tile``), or None.
        ignore_index: the label of unlabelled pixels.
        checkpoint: the file the weights came from.
        step: the checkpoint's training step.
        run: the parsed run config (:class:`s4seg.cli.config_parser.RunConfig`).
    """

    generator: Any
    num_classes: int
    class_names: list[str] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tile: int | None
    ignore_index: int
    checkpoint: Path
    step: int
    run: Any


def load_trained_model(path: Path, config: Path | None = None) -> TrainedModel:
    """Rebuild the generator of a run folder or checkpoint and load its weights.

    Raises:
        CommandError: no config found, a damaged checkpoint, or one whose weights do
            not fit the config's generator (another config trained it).
    """
    from s4seg.cli.config_parser import parse_config
    from s4seg.cli.model_config import build_generator
    from s4seg.training import read_checkpoint

    checkpoint, config_file = find_run(path, config)
    run = parse_config(config_file, [])
    if run.data.num_classes is None:
        raise CommandError(f"{config_file}: data.num_classes is not set")
    generator = build_generator(run.model, run.data.num_classes, weights=False)
    try:
        state = read_checkpoint(checkpoint)
    except (ValueError, OSError) as err:
        raise CommandError(str(err)) from err
    weights = state.get("generator") if isinstance(state, dict) else None
    if weights is None:
        raise CommandError(
            f"{checkpoint} holds no 'generator' weights (keys: {sorted(state)[:8]}); pass a "
            "checkpoint written by s4seg train (RUN_DIR/checkpoints/*.pt)"
        )
    try:
        generator.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).splitlines()
        raise CommandError(
            f"{checkpoint} does not fit the generator of {config_file} "
            f"(model.name={run.model.name!r}, data.num_classes={run.data.num_classes}): "
            f"{' '.join(x.strip() for x in first[:3])[:600]}; pass the config that trained "
            "it with --config"
        ) from err
    generator.eval()
    return TrainedModel(
        generator=generator,
        num_classes=run.data.num_classes,
        class_names=run.data.class_names,
        mean=tuple(run.data.mean),
        std=tuple(run.data.std),
        tile=run.trainer.eval_tile,
        ignore_index=run.trainer.ignore_index,
        checkpoint=checkpoint,
        step=int(state.get("step", -1)),
        run=run,
    )
