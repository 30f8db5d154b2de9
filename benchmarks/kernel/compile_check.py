"""Compile the Triton kernels for a GPU target on a machine without a GPU.

Triton's front end, its MLIR passes and NVIDIA's ``ptxas`` (shipped with Triton)
all run on the CPU, so this checks what the interpreter cannot: that each kernel
variant lowers to PTX, how many registers it uses, whether it spills, and whether
the logits loads are 16-byte vector loads (``ld.global.v4``).

Usage::

    python -m benchmarks.kernel.compile_check [--arch 90]

It mirrors the specialisation Triton applies at launch (integer arguments equal
to 1 become constants, pointers and integers divisible by 16 are marked so); it
is a check of the compiled path, not a timing.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

if os.environ.get("TRITON_INTERPRET") == "1":
    sys.exit("unset TRITON_INTERPRET: this script compiles for the GPU")

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from s4seg.ops import triton_confidence_masked_ce as k

_PTR = {"float32": "*fp32", "float16": "*fp16", "bfloat16": "*bf16"}


@dataclass(frozen=True)
class Variant:
    """One specialisation of the kernels, as a training step would launch it."""

    dtype: str = "float32"
    c: int = 21
    h: int = 320
    w: int = 320
    teacher: bool = False
    labels: bool = False
    keep: bool = False
    kind: str = "scalar"
    channels_last: bool = False
    temperature: float = 1.0

    def name(self) -> str:
        parts = [self.dtype, f"C{self.c}", f"{self.h}x{self.w}", self.kind]
        parts += [n for n, on in (("teacher", self.teacher), ("labels", self.labels),
                                  ("keep", self.keep), ("channels_last", self.channels_last)) if on]  # fmt: skip
        return " ".join(parts)


def _specialise(fn, values: dict[str, object], types: dict[str, str], consts: dict[str, object]):
    """Signature, constants and attributes as Triton's launcher would derive them."""
    sig, attrs = {}, {}
    consts = dict(consts)
    for i, name in enumerate(fn.arg_names):
        if name in consts:
            sig[name] = "constexpr"
            continue
        v = values.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v == 1:
            consts[name] = 1
            sig[name] = "constexpr"
            continue
        sig[name] = types[name]
        # Pointers from the torch allocator are 16-byte aligned; ints divisible by 16 too.
        if types[name].startswith("*") or (isinstance(v, int) and v % 16 == 0):
            attrs[(i,)] = [["tt.divisibility", 16]]
    return ASTSource(fn, sig, consts, attrs)


def sources(v: Variant) -> list[tuple[str, ASTSource, int]]:
    elem = 4 if v.dtype == "float32" else 2
    block_p, block_c, num_warps = k.default_blocks(v.c, elem, v.channels_last)
    hw = v.h * v.w
    n_tiles = triton.cdiv(hw, block_p)
    strides = (v.c * hw, 1, v.c) if v.channels_last else (v.c * hw, hw, 1)
    small = v.c <= k._UINT8_SENTINEL
    tgt = "*u8" if small else "*i32"
    x = _PTR[v.dtype]
    fwd_values = dict(xs_b=strides[0], xs_c=strides[1], xs_p=strides[2], ts_b=strides[0],
                      ts_c=strides[1], ts_p=strides[2], ls_b=hw, ls_p=1, HW=hw, n_tiles=n_tiles,
                      cnt_stride=8 * n_tiles, ignore_index=255)  # fmt: skip
    fwd_types = dict(x_ptr=x, t_ptr=x, lab_ptr="*i64", keep_ptr="*u8", thr_ptr="*fp32",
                     lse_ptr="*fp32", tgt_ptr=tgt, loss_part_ptr="*fp32", cnt_part_ptr="*i32",
                     inv_t="fp32", **{n: "i32" for n in fwd_values})  # fmt: skip
    fwd_consts = dict(
        C=v.c, BLOCK_C=block_c, BLOCK_P=block_p, HAS_TEACHER=v.teacher, HAS_LABELS=v.labels,
        HAS_KEEP=v.keep, SKIP_DROPPED=v.keep, THR_KIND=k._THR_KIND[v.kind],
        TEMP_SUM=v.teacher or v.temperature != 1.0, NEED_ARG=not v.labels or v.kind == "class",
        NEED_VALID=False, IGNORE_IN_RANGE=False,
        SENTINEL=k._UINT8_SENTINEL if small else k._INT32_SENTINEL,
    )  # fmt: skip
    bwd_values = dict(xs_b=strides[0], xs_c=strides[1], xs_p=strides[2], gs_b=strides[0],
                      gs_c=strides[1], gs_p=strides[2], HW=hw, n_tiles=n_tiles)  # fmt: skip
    bwd_types = dict(x_ptr=x, g_ptr=x, lse_ptr="*fp32", tgt_ptr=tgt, cnt_part_ptr="*i32",
                     scale_ptr="*fp32", **{n: "i32" for n in bwd_values})  # fmt: skip
    bwd_consts = dict(C=v.c, BLOCK_C=block_c, BLOCK_P=block_p, SENTINEL=fwd_consts["SENTINEL"])
    return [
        ("fwd", _specialise(k._cmce_fwd_kernel, fwd_values, fwd_types, fwd_consts), num_warps),
        ("bwd", _specialise(k._cmce_bwd_kernel, bwd_values, bwd_types, bwd_consts), num_warps),
    ]


VARIANTS = [
    Variant(),
    Variant(h=321, w=321),
    Variant(dtype="bfloat16", c=19, h=512, w=1024),
    Variant(dtype="float16", c=150, h=512, w=512, kind="class"),
    Variant(teacher=True, labels=False, keep=True, kind="image", temperature=2.0),
    Variant(dtype="bfloat16", labels=True, keep=True, kind="class"),
    Variant(channels_last=True),
    Variant(c=300, h=64, w=64),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80 or 90")
    args = parser.parse_args(argv)
    target = GPUTarget("cuda", args.arch, 32)
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    arch = f"sm_{args.arch}a" if args.arch >= 90 else f"sm_{args.arch}"
    print(f"triton {triton.__version__}, target {arch}")
    print(
        f"{'variant':52s} {'kernel':6s} {'regs':>5s} {'spill B':>8s} {'ld.v4':>6s} {'ld.v2':>6s} {'ld':>4s}"
    )
    failures = 0
    for v in VARIANTS:
        for kname, src, num_warps in sources(v):
            try:
                compiled = triton.compile(src, target=target, options={"num_warps": num_warps})
            except Exception as exc:  # report every variant, then fail
                failures += 1
                print(f"{v.name():52s} {kname:6s} FAILED: {type(exc).__name__}: {exc}")
                continue
            ptx = compiled.asm["ptx"]
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "k.ptx")
                with open(path, "w") as fh:
                    fh.write(ptx)
                out = subprocess.run(
                    [ptxas, f"-arch={arch}", "-v", path, "-o", os.path.join(tmp, "k.cubin")],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stderr
            regs = re.search(r"Used (\d+) registers", out)
            spill = re.search(r"(\d+) bytes spill stores", out)
            n_v4 = len(re.findall(r"ld\.global(?:\.\w+)*\.v4", ptx))
            n_v2 = len(re.findall(r"ld\.global(?:\.\w+)*\.v2", ptx))
            n_1 = len(re.findall(r"ld\.global(?:\.\w+)*\.b(?:16|32)\s", ptx))
            print(
                f"{v.name():52s} {kname:6s} {regs.group(1) if regs else '?':>5s} "
                f"{spill.group(1) if spill else '?':>8s} {n_v4:6d} {n_v2:6d} {n_1:4d}"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
