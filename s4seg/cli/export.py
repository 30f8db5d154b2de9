"""``s4seg export RUN_DIR|CHECKPOINT --onnx model.onnx``: the generator for deployment.

The ONNX graph takes normalised images (the run's ``data.mean`` / ``data.std``, printed
and stored in the model's metadata) of any batch size and size, and returns logits at
the input size. ``pip install "s4seg[export]"`` brings onnx and onnxruntime, with which
the export is checked against PyTorch.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from s4seg.cli.errors import CommandError

if TYPE_CHECKING:
    import torch

__all__ = ["export_onnx", "run"]


def export_onnx(generator: torch.nn.Module, path: Path, *, size: int = 64, opset: int = 17) -> Path:
    """Write ``generator`` as ONNX with dynamic batch, height and width.

    The TorchScript-based exporter (``dynamo=False``) is used: it needs no onnxscript,
    and the generator's shape checks trace to constants that hold for any size.
    """
    import torch

    example = torch.zeros(1, 3, size, size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The exporter warns about its own deprecation and about the generator's input
        # checks, which are constant for the traced channel count.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator, (example,), str(path), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
        )  # fmt: skip
    return path


def _metadata(
    path: Path, mean: tuple[float, ...], std: tuple[float, ...], names: list[str]
) -> None:
    try:
        import onnx
    except ImportError:
        return  # the graph is complete without it; the metadata is a convenience
    proto = onnx.load(str(path))
    for key, value in (("mean", mean), ("std", std), ("class_names", names)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, ",".join(map(str, value))
    onnx.save(proto, str(path))


def run(target: Path, *, onnx: Path, config: Path | None = None, check: bool = True) -> int:
    """Export the run's generator; with onnxruntime installed, compare its output."""
    import torch

    from s4seg.cli.run_folder import load_trained_model

    model = load_trained_model(target, config)
    onnx.parent.mkdir(parents=True, exist_ok=True)
    try:
        export_onnx(model.generator, onnx)
    except Exception as err:  # the exporter's own errors are many types; all are fatal here
        raise CommandError(f"exporting {model.checkpoint} to ONNX failed: {err}") from err
    names = model.class_names or [str(c) for c in range(model.num_classes)]
    _metadata(onnx, model.mean, model.std, names)
    print(f"wrote {onnx}: input 'image' (B, 3, H, W) normalised with mean {model.mean} and "
          f"std {model.std}; output 'logits' (B, {model.num_classes}, H, W)")  # fmt: skip
    if not check:
        return 0
    try:
        import onnxruntime
    except ImportError:
        print('not checked: onnxruntime is not installed (pip install "s4seg[export]")')
        return 0
    session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 72, 56, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model.generator(x).numpy()
    got = session.run(None, {"image": x.numpy()})[0]
    diff = float(abs(got - expected).max())
    scale = float(abs(expected).max()) or 1.0
    if diff > 1e-3 * scale + 1e-4:
        raise CommandError(f"{onnx}: onnxruntime's logits differ from PyTorch's by {diff:.3g}")
    print(f"checked with onnxruntime on a (2, 3, 72, 56) batch: max difference {diff:.2g}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``s4seg export`` to the command's subparsers (no torch is loaded)."""
    p = sub.add_parser(
        "export",
        help="the generator as ONNX, checked with onnxruntime when installed",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("target", type=Path, metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--onnx", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--config", type=Path, help="the run config (default: RUN_DIR/config.yaml)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    p.set_defaults(
        run_command=lambda args, extra: run(
            args.target, onnx=args.onnx, config=args.config, check=not args.no_check
        )
    )
