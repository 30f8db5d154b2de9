"""The run config of ``s4seg train``: its parser (jsonargparse), and reading it back.

A run config has five sections and two keys::

    data:     DataConfig       (s4seg.cli.data_config)
    model:    ModelConfig      (s4seg.cli.model_config)
    method:   class_path: s4seg.methods.S4GAN, init_args: {...}   any Method, with its parts
    trainer:  TrainerConfig    (every field but ``method``, which the method section sets)
    out:      the run folder;  seed: splits, weights and batches

jsonargparse maps each class and its typed ``__init__`` to YAML (``class_path`` /
``init_args``), so a filter, a schedule or a discriminator inside the method is chosen
by its import path with no registry of our own. Chosen over hand-written argparse and
over Hydra/OmegaConf because it reads the types and docstrings the library already has
(nothing to keep in sync), checks every value against its type, and writes the resolved
config back as YAML that parses to the same run.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s4seg.cli.data_config import DataConfig
from s4seg.cli.errors import CommandError
from s4seg.cli.model_config import InitFrom, ModelConfig

__all__ = ["RunConfig", "dump_config", "parse_config", "train_parser"]

DEFAULT_METHOD = {"class_path": "s4seg.methods.S4GAN"}


@dataclass
class RunConfig:
    """A parsed and built run config.

    Attributes:
        namespace: the parsed values (what :func:`dump_config` writes).
        data: the ``data:`` section.
        model: the ``model:`` section.
        method: the method object, built with its parts.
        trainer: the :class:`s4seg.TrainerConfig`.
        init_from: checkpoints of the original S4GAN code to start from.
        out: the run folder (None: not set).
        seed: the run's seed.
    """

    namespace: Any
    data: DataConfig
    model: ModelConfig
    method: Any
    trainer: Any
    out: str | None
    seed: int
    init_from: InitFrom = dataclasses.field(default_factory=InitFrom)


def train_parser() -> Any:
    """The jsonargparse parser of a run config (loads torch: call it inside a command)."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    from s4seg.methods import Method
    from s4seg.training import TrainerConfig

    p = ArgumentParser(
        prog="s4seg train", exit_on_error=False, default_env=False, allow_abbrev=False
    )
    p.add_argument("--config", action=ActionConfigFile, help="a run config file (YAML)")
    p.add_class_arguments(DataConfig, "data", help="the folder dataset and its loaders")
    p.add_class_arguments(ModelConfig, "model", help="the generator")
    p.add_subclass_arguments(
        Method, "method", default=DEFAULT_METHOD, help="the method, with its parts"
    )
    p.add_class_arguments(TrainerConfig, "trainer", skip={"method"}, help="the loop")
    p.add_class_arguments(
        InitFrom, "init_from", help="checkpoints of the original S4GAN code to start from"
    )
    p.add_argument("--out", type=str | None, default=None, help="the run folder")
    p.add_argument("--seed", type=int, default=0, help="splits, weights and batches")
    return p


def _flat(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return [prefix[:-1]]
    return [k for key, value in tree.items() for k in _flat(value, f"{prefix}{key}.")]


def _explain(err: Exception, parser: Any, config: Path | None, overrides: list[str]) -> str:
    """The parser's message, with where the bad key came from and its close match."""
    text = str(err).strip()
    unknown = re.findall(r"--([\w.]+)", text) if "unrecognized arguments" in text else []
    unknown += [
        f"{g}.{k}" for g, k in re.findall(r"Group '([\w.]+)' does not accept option '(\w+)'", text)
    ]
    unknown += re.findall(r"Key '([\w.]+)' is not expected", text)

    def where(key: str) -> str:
        if any(o.lstrip("-").startswith(key) for o in overrides) or config is None:
            return "on the command line"
        return f"in {config}"

    if not unknown:
        match = re.search(r'Parser key "([\w.]+)"', text)
        key = match.group(1) if match else None
        return f"{where(key) if key else config or 'the command line'}: {text}"
    known = _flat(parser.get_defaults().as_dict())
    lines = []
    for key in dict.fromkeys(unknown):
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = (
            f"did you mean {close[0]!r}?" if close else "s4seg train --print-config lists the keys"
        )
        lines.append(f"unknown config key {key!r} {where(key)} ({hint})")
    return "; ".join(lines)


def parse_config(config: Path | None, overrides: list[str]) -> RunConfig:
    """Parse a config file with command-line overrides (``--key.path=value``) and build it.

    Raises:
        CommandError: an unknown key (with the close match), a value of the wrong type
            or out of range (naming the key), a file that cannot be read.
    """
    from jsonargparse import ArgumentError

    parser = train_parser()
    args = (["--config", str(config)] if config is not None else []) + list(overrides)
    try:
        namespace = parser.parse_args(args)
    except (ArgumentError, ValueError, TypeError) as err:
        raise CommandError(_explain(err, parser, config, list(overrides))) from err
    namespace.pop("config", None)
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    try:
        built = instantiate(namespace)
    except (ArgumentError, ValueError, TypeError) as err:
        raise CommandError(f"{config or 'the command line'}: {_last_line(err)}") from err
    return RunConfig(
        namespace=namespace,
        data=built.data,
        model=built.model,
        method=built.method,
        trainer=built.trainer,
        out=built.out,
        seed=built.seed,
        init_from=built.init_from,
    )


def _last_line(err: BaseException) -> str:
    # Errors raised inside a constructor reach us wrapped; their own message is the news.
    while err.__cause__ is not None and str(err.__cause__):
        err = err.__cause__
    return str(err).strip()


def dump_config(run: RunConfig) -> str:
    """The resolved config as YAML, every default included; it parses back to the same run."""
    parser = train_parser()
    try:
        return str(parser.dump(run.namespace, skip_unset=False))
    except TypeError:  # jsonargparse before 4.49 names the option skip_none
        return str(parser.dump(run.namespace, skip_none=False))
