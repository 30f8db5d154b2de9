"""``s4seg export RUN_DIR --onnx FILE``: onnxruntime's logits match PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s4seg.cli.main import main
from s4seg.cli.run_folder import load_trained_model


def test_onnx_matches_pytorch_at_several_sizes(trained_run, tmp_path, capsys) -> None:
    ort = pytest.importorskip(
        "onnxruntime", reason='the export extra is not installed: pip install -e ".[export]"'
    )
    run, _ = trained_run
    path = tmp_path / "model.onnx"
    assert main(["export", str(run), "--onnx", str(path)]) == 0
    assert "checked with onnxruntime" in capsys.readouterr().out
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = load_trained_model(run).generator
    for shape in [(1, 3, 32, 32), (3, 3, 41, 67)]:  # another batch and an odd size
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            expected = generator(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    meta = {p.key: p.value for p in __import__("onnx").load(str(path)).metadata_props}
    assert meta["class_names"] == "background,square,stripe"
