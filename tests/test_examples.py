"""Every command the docs show runs, as shown (issue 19: the first hour of a new user).

The commands are read out of the pages (the fenced ``bash`` blocks of docs/, and the
command lines in the headers of examples/*.py, which the Recipes page includes) and
run from a fresh working directory in which ``examples/`` is the repository's. What
trains for minutes runs with a small size appended, as the pages say; ``EXTRA`` holds
what is appended to each command. A command added to the docs fails
``test_every_documented_command_is_run`` until a test here runs it.

The README's two set-up commands are not run here (they make a virtual environment;
CI runs the test command itself, and test_docs checks that Getting started has both
verbatim), nor is the quickstart (tests/test_quickstart.py runs it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"
SIZES = ["--train-size", "24", "--val-size", "4", "--labelled", "8", "--image-size", "32",
         "--batch-size", "2"]  # fmt: skip
SMALL = ["--max-steps", "2", *SIZES]
# The main job also measures a test split.
MAIN_SIZES = [*SIZES, "--test-size", "4"]
MAIN_SMALL = ["--max-steps", "2", *MAIN_SIZES]
# Under torchrun every rank needs a labelled batch of its own: 16 images for 8 ranks.
DDP_SMALL = ["--max-steps", "2", "--train-size", "48", "--val-size", "8", "--labelled", "16",
             "--image-size", "32", "--batch-size", "2"]  # fmt: skip
TMP = "{tmp}"  # replaced by the test's own temporary folder

# What the tests append to each documented command: [] runs it exactly as shown.
EXTRA: dict[str, list[str]] = {
    # Getting started
    "python examples/main_job.py --help": [],
    "s4seg report runs/main_job": [],
    "s4seg examples --copy my_recipes": [],
    "python my_recipes/main_job.py --max-steps 2": MAIN_SIZES,
    "tensorboard --logdir runs/main_job": [],
    "s4seg report runs/main_job/fixmatch": [],
    # Diagnosing runs
    "s4seg report runs/exp1": [],
    "s4seg report runs/exp1 --out reports/exp1 --duration-steps 100": [],
    "s4seg report --from s4gan-log train.log --eval-log eval.log": [],
    # Your own data (demo_data from the folder recipe's --make-demo-data)
    "s4seg configs": [],
    "s4seg train cpu_small --data.root=demo_data/train --data.val_root=demo_data/val "
    "--data.num_classes=6 --trainer.max_steps=100 --trainer.eval_interval=50":
        ["--trainer.max_steps=2", "--trainer.eval_interval=2", "--data.crop_size=32"],
    "s4seg eval runs/cpu_small --flip": [],
    "s4seg predict runs/cpu_small demo_data/val/images --out predictions": [],
    "s4seg report runs/cpu_small": [],
    "s4seg export runs/cpu_small --onnx model.onnx": [],
    # Recipes and the scripts' headers
    "python examples/main_job.py": MAIN_SMALL,
    "python examples/main_job.py --max-steps 2": MAIN_SIZES,
    "python examples/s4gan_synthetic.py": SMALL,
    "python examples/s4gan_synthetic.py --max-steps 2": SIZES,
    "python examples/deeplabv2_folder.py --make-demo-data demo_data": [],
    "python examples/deeplabv2_folder.py --data demo_data --num-classes 6 --crop-size 129 "
    "--max-steps 20": ["--max-steps", "2"],
    "python examples/threshold_schedules.py --max-steps 600": SMALL,
    "python examples/custom_backbone.py --backbone efficientnet_b0 --max-steps 300": SMALL,
    "python examples/doctor_demo.py": SMALL,
    "python examples/doctor_demo.py --max-steps 20": [],
    "python examples/doctor_demo.py --rollback": SMALL,
    "python examples/doctor_demo.py --backbone resnet18 --image-size 64 --duration-steps 100": SMALL,
    "s4seg report runs/doctor_demo --duration-steps 20": [],
    "python examples/unimatch_synthetic.py": SMALL,
    "python examples/unimatch_synthetic.py --max-steps 2": SIZES,
    "python examples/fixmatch_synthetic.py": SMALL,
    "python examples/fixmatch_synthetic.py --max-steps 2": SIZES,
    "python examples/mean_teacher_synthetic.py": SMALL,
    "python examples/mean_teacher_synthetic.py --max-steps 2": SIZES,
    "python examples/advsemiseg_synthetic.py": SMALL,
    "python examples/advsemiseg_synthetic.py --max-steps 2": SIZES,
    # Scaling out
    "torchrun --nproc_per_node 4 examples/s4gan_synthetic.py": DDP_SMALL,
    "torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint HOST:29500 "
    "examples/s4gan_synthetic.py": DDP_SMALL,
    # Benchmarks: toy sizes, output to the test's folder, never to the committed files
    "python -m benchmarks.kernel.run": ["--no-csv", "--providers", "eager", "--modes", "forward"],
    "python -m benchmarks.kernel.report": ["--plot-dir", TMP],
    "python -m benchmarks.step.run": ["--steps", "2", "--no-csv"],
    "python -m benchmarks.step.run --preset gpu": ["--steps", "2", "--no-csv"],
    "python -m benchmarks.step.run --preset gpu_deeplabv2": ["--steps", "2", "--no-csv"],
    "python -m benchmarks.data.index_files": ["--sizes", "200", "--repeats", "1", "--no-csv",
                                              "--tmp", TMP],
    "python -m benchmarks.data.loader_throughput": ["--images", "16", "--size", "32",
                                                    "--warmup", "1", "--batches", "2",
                                                    "--steps", "1", "--workers", "0",
                                                    "--no-csv", "--tmp", TMP],
    "python -m benchmarks.quality.run": ["--quick", "--seeds", "0", "--splits", "1/16",
                                         "--methods", "supervised", "--no-full",
                                         "--out", f"{TMP}/quality.csv"],
    "python -m benchmarks.quality.run --suite family": ["--quick", "--seeds", "0",
                                                        "--methods", "advsemiseg",
                                                        "--out", f"{TMP}/quality.csv"],
    "python -m benchmarks.quality.run --quick": ["--seeds", "0", "--splits", "1/16",
                                                 "--methods", "supervised", "--no-full",
                                                 "--out", f"{TMP}/quality.csv"],
    "python -m benchmarks.quality.report": ["--out", f"{TMP}/quality"],
}  # fmt: skip
NEEDS_CUDA = {
    "python -m benchmarks.step.run --preset gpu",
    "python -m benchmarks.step.run --preset gpu_deeplabv2",
}
# Shown, and checked by another test rather than run: it installs torch from the network.
NOT_RUN = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.14.1 "
    "torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu && pip install -e "
    '".[test]" && python examples/main_job.py': "test_docs.py::"
    "test_getting_started_gives_cpu_users_the_cpu_wheel_index",
}


# ------------------------------------------------------------------ the commands the docs show
def _commands(text: str) -> list[str]:
    """Command lines of a shell snippet: continuations joined, trailing comments dropped."""
    out, pending = [], ""
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = re.sub(r"\s+#.*$", "", pending + line).strip()
        pending = ""
        if line and not line.startswith("#"):
            out.append(line)
    return out


def documented_commands() -> dict[str, str]:
    """Every command of the docs' bash blocks and of the example headers -> where it is shown."""
    readme = (ROOT / "README.md").read_text()
    setup = {c for b in re.findall(r"```bash\n(.*?)```", readme, re.S)[:2] for c in _commands(b)}
    found: dict[str, str] = {}
    pages = [p for p in sorted(DOCS.rglob("*.md")) if "quality" not in p.relative_to(DOCS).parts]
    for page in pages:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for command in _commands(block):
                found.setdefault(command, str(page.relative_to(ROOT)))
    for script in sorted(EXAMPLES.glob("*.py")):
        doc = script.read_text().split('"""')[1]
        lines = [x for x in doc.splitlines() if re.match(r"    (python|s4seg|torchrun) ", x)]
        for command in _commands("\n".join(lines)):
            found.setdefault(command, str(script.relative_to(ROOT)))
    return {c: where for c, where in found.items() if c not in setup}


def test_every_documented_command_is_run() -> None:
    shown = documented_commands()
    missing = sorted(
        f"{c}  ({where})" for c, where in shown.items() if c not in {**EXTRA, **NOT_RUN}
    )
    assert not missing, (
        "commands the docs show that no test runs (add them to EXTRA):\n" + "\n".join(missing)
    )
    stale = sorted(set(EXTRA) - set(shown))
    assert not stale, f"EXTRA runs commands the docs no longer show: {stale}"
    covered = {c for group in GROUPS.values() for c in group}
    assert covered == set(EXTRA), sorted(set(EXTRA) ^ covered)


# ------------------------------------------------------------------ running them
class Shell:
    """Runs documented commands in one working directory, as a user would type them."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        cwd.mkdir(parents=True, exist_ok=True)
        (cwd / "examples").symlink_to(EXAMPLES)
        bin_dir = str(Path(sys.executable).parent)
        # The suite runs the kernel under TRITON_INTERPRET=1; a documented command runs
        # as a user's shell would, without it (the kernel benchmark refuses it).
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),  # `python -m benchmarks...` from anywhere
            "OMP_NUM_THREADS": "1",
        }
        self.done: dict[tuple[str, ...], str] = {}

    def argv(self, command: str, **substitute: str) -> list[str]:
        """The command's words, with its EXTRA appended and ``substitute`` applied."""
        assert command in EXTRA, f"not a documented command: {command}"
        extra = [a.replace(TMP, str(self.cwd)) for a in EXTRA[command]]
        for old, new in substitute.items():
            command = command.replace(old, new)
        argv = shlex.split(command) + extra
        return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]

    def run(self, command: str, timeout: int = 600) -> str:
        argv = self.argv(command)
        if tuple(argv) in self.done:  # the same run as an earlier command's (--max-steps 2)
            return self.done[tuple(argv)]
        proc = subprocess.run(argv, cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        self.done[tuple(argv)] = proc.stdout
        return proc.stdout


GROUPS: dict[str, list[str]] = {
    "main_job": [
        "python examples/main_job.py --help",
        "python examples/main_job.py",
        "python examples/main_job.py --max-steps 2",
        "s4seg report runs/main_job",
        "s4seg report runs/main_job/fixmatch",
        "tensorboard --logdir runs/main_job",
        "s4seg examples --copy my_recipes",
        "python my_recipes/main_job.py --max-steps 2",
    ],
    "s4gan": [
        "python examples/s4gan_synthetic.py",
        "python examples/s4gan_synthetic.py --max-steps 2",
        "s4seg report runs/exp1",
        "s4seg report runs/exp1 --out reports/exp1 --duration-steps 100",
    ],
    "original_log": ["s4seg report --from s4gan-log train.log --eval-log eval.log"],
    "own_data": [
        "s4seg configs",
        "s4seg train cpu_small --data.root=demo_data/train --data.val_root=demo_data/val "
        "--data.num_classes=6 --trainer.max_steps=100 --trainer.eval_interval=50",
        "s4seg eval runs/cpu_small --flip",
        "s4seg predict runs/cpu_small demo_data/val/images --out predictions",
        "s4seg report runs/cpu_small",
        "s4seg export runs/cpu_small --onnx model.onnx",
    ],
    "schedules": ["python examples/threshold_schedules.py --max-steps 600"],
    "backbone": ["python examples/custom_backbone.py --backbone efficientnet_b0 --max-steps 300"],
    "doctor": [
        "python examples/doctor_demo.py",
        "python examples/doctor_demo.py --rollback",
        "python examples/doctor_demo.py --backbone resnet18 --image-size 64 --duration-steps 100",
        "python examples/doctor_demo.py --max-steps 20",
        "s4seg report runs/doctor_demo --duration-steps 20",
    ],
    "folder": [
        "python examples/deeplabv2_folder.py --make-demo-data demo_data",
        "python examples/deeplabv2_folder.py --data demo_data --num-classes 6 --crop-size 129 "
        "--max-steps 20",
    ],
    **{
        name: [f"python examples/{name}_synthetic.py", f"python examples/{name}_synthetic.py --max-steps 2"]
        for name in ("unimatch", "fixmatch", "mean_teacher", "advsemiseg")
    },
    "torchrun": [
        "torchrun --nproc_per_node 4 examples/s4gan_synthetic.py",
        "torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint HOST:29500 "
        "examples/s4gan_synthetic.py",
    ],
    "benchmarks": [c for c in EXTRA if c.startswith("python -m benchmarks.")],
}  # fmt: skip


def test_main_job_and_what_getting_started_does_with_it(tmp_path):
    sh = Shell(tmp_path)
    assert "(default: 4000)" in sh.run("python examples/main_job.py --help")
    out = sh.run("python examples/main_job.py")
    assert "| supervised | 2 | 8 |" in out and "| fixmatch | 2 | 8 |" in out
    assert "FixMatch − supervised, test mIoU at best val: " in out
    assert sh.run("python examples/main_job.py --max-steps 2") == out
    runs = tmp_path / "runs" / "main_job"
    for method in ("supervised", "fixmatch"):
        folder = runs / method
        assert (folder / "config.json").exists()
        # The best-validation weights the table's test column is measured on.
        assert (folder / "checkpoints" / "last.pt").exists()
        assert (folder / "checkpoints" / "best.pt").exists()
        records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        assert any(r["kind"] == "eval" for r in records)
        assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert "| fixmatch | 2 | 8 |" in (runs / "results.md").read_text()
    # The folder the README names: each run reported, and the two compared.
    printed = sh.run("s4seg report runs/main_job").split()
    assert printed[-1] == "runs/main_job/report.md"
    text = (runs / "report.md").read_text()
    assert "| [`fixmatch`](fixmatch/report.md) | fixmatch | 2 |" in text
    assert (runs / "val_miou.png").exists()
    assert sh.run("s4seg report runs/main_job/fixmatch").strip().endswith("report.md")
    serve_tensorboard(sh)
    # From a pip install: the recipes copied out run from their own folder.
    sh.run("s4seg examples --copy my_recipes")
    out = sh.run("python my_recipes/main_job.py --max-steps 2")
    assert "| fixmatch | 2 | 8 |" in out


def test_s4gan_recipe_and_diagnosing_runs(tmp_path):
    sh = Shell(tmp_path)
    out = sh.run("python examples/s4gan_synthetic.py")
    assert "| supervised | 2 | 8 |" in out and "| s4gan | 2 | 8 |" in out
    assert sh.run("python examples/s4gan_synthetic.py --max-steps 2") == out
    runs = tmp_path / "runs" / "s4gan_synthetic"
    for method in ("supervised", "s4gan"):
        assert (runs / method / "checkpoints" / "last.pt").exists()
    assert (runs / "results.md").exists()
    # Diagnosing runs reports a run folder called runs/exp1: an S4GAN run here.
    shutil.copytree(runs / "s4gan", tmp_path / "runs" / "exp1")
    sh.run("s4seg report runs/exp1")
    sh.run("s4seg report runs/exp1 --out reports/exp1 --duration-steps 100")
    assert (tmp_path / "reports" / "exp1" / "report.md").exists()


def serve_tensorboard(sh: Shell) -> None:
    """``tensorboard --logdir ...`` starts serving the run folders; stopped once it does."""
    proc = subprocess.Popen(sh.argv("tensorboard --logdir runs/main_job"), cwd=sh.cwd,
                            env=sh.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    seen = ""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "http://" not in seen:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line and proc.poll() is not None:
                break
            seen += line
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "http://" in seen, seen[-2000:]


def test_report_of_a_log_of_the_original_code(tmp_path):
    # The documented command on the fixture of tests/doctor (a run of the original
    # train_s4GAN.py whose discriminator rejects everything from iteration 120).
    fixture = ROOT / "tests" / "doctor" / "fixtures" / "s4gan_original"
    sh = Shell(tmp_path)
    shutil.copy(fixture / "train.log", tmp_path / "train.log")
    shutil.copy(fixture / "eval_200.log", tmp_path / "eval.log")
    out = sh.run(GROUPS["original_log"][0]).splitlines()
    assert out == ["converted train.log into the run folder train_s4seg", "train_s4seg/report.md"]
    text = (tmp_path / "train_s4seg" / "report.md").read_text()
    assert "Converted from a log of the original S4GAN code" in text and "`st_starved`" in text


def test_own_data_commands(tmp_path):
    # Your own data: the demo folder, then each command on the page in its order.
    sh = Shell(tmp_path)
    sh.run(GROUPS["folder"][0])
    train, evaluate, predict, report, export = GROUPS["own_data"][1:]
    assert "cpu_small" in sh.run(GROUPS["own_data"][0])
    assert "trained 2 steps: runs/cpu_small" in sh.run(train)
    assert "mIoU" in sh.run(evaluate) and (tmp_path / "runs/cpu_small/eval/confusion.png").exists()
    assert "wrote 8 masks to predictions" in sh.run(predict)
    assert len(list((tmp_path / "predictions").glob("*.png"))) == 8
    sh.run(report)
    assert (tmp_path / "runs/cpu_small/report.md").exists()
    # The export needs the export extra (onnx, onnxruntime); CI's second stage has it.
    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):
        assert "wrote model.onnx" in sh.run(export)


def test_threshold_schedules_recipe(tmp_path):
    out = Shell(tmp_path).run("python examples/threshold_schedules.py --max-steps 600")
    for name in ("static 0.2", "linear 0.2->0.05", "step .05/.10/.15/.20"):
        assert f"| {name} | 2 |" in out


def test_custom_backbone_recipe(tmp_path):
    command = "python examples/custom_backbone.py --backbone efficientnet_b0 --max-steps 300"
    out = Shell(tmp_path).run(command)
    assert "efficientnet_b0:" in out and "best val mIoU" in out


def test_doctor_demo_and_its_report(tmp_path):
    for i, command in enumerate(GROUPS["doctor"][:3]):
        Shell(tmp_path / str(i)).run(command)
        assert (tmp_path / str(i) / "runs" / "doctor_demo" / "report.md").exists()
    sh = Shell(tmp_path / "twenty")
    assert "findings; report:" in sh.run("python examples/doctor_demo.py --max-steps 20")
    report = sh.cwd / "runs" / "doctor_demo" / "report.md"
    report.unlink()
    sh.run("s4seg report runs/doctor_demo --duration-steps 20")
    assert report.exists()


@pytest.mark.slow
def test_folder_recipe_on_demo_data_as_documented(tmp_path):
    # The documented command, at the default batch of 8 and the documented crop: the demo
    # data's 64 training images give 8 labelled ones at --labelled 0.125.
    sh = Shell(tmp_path)
    assert "wrote 64 train and 8 val images" in sh.run(GROUPS["folder"][0])
    command = GROUPS["folder"][1]
    assert "best val mIoU" in sh.run(command)
    # A second call resumes from the last checkpoint instead of starting over.
    again = subprocess.run([*sh.argv(command)[:-1], "3"], cwd=tmp_path, env=sh.env,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from step 2" in again.stdout


def test_folder_recipe_refuses_a_labelled_split_smaller_than_a_batch(tmp_path):
    sh = Shell(tmp_path)
    sh.run(GROUPS["folder"][0])
    proc = subprocess.run(
        [sys.executable, "examples/deeplabv2_folder.py", "--data", "demo_data", "--labelled",
         "4", "--max-steps", "1"],
        cwd=tmp_path, env=sh.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "4 labelled images, fewer than one batch (--batch-size 8)" in proc.stderr


@pytest.mark.parametrize(
    ("script", "name"),
    [
        ("fixmatch_synthetic.py", "fixmatch"),
        ("advsemiseg_synthetic.py", "advsemiseg"),
        ("mean_teacher_synthetic.py", "mean_teacher"),
        ("unimatch_synthetic.py", "unimatch"),
    ],
)
def test_method_recipes(tmp_path, script, name):
    sh = Shell(tmp_path)
    out = sh.run(f"python examples/{script}")
    assert f"| {name} | 2 | 8 |" in out
    assert sh.run(f"python examples/{script} --max-steps 2") == out
    folder = next((tmp_path / "runs").glob(f"*/{name}"))
    config = json.loads((folder / "config.json").read_text())
    assert config["trainer"]["method"] == name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_torchrun_on_one_machine_and_on_two(tmp_path):
    sh = Shell(tmp_path / "one")
    out = sh.run("torchrun --nproc_per_node 4 examples/s4gan_synthetic.py")
    assert "| s4gan | 2 | 16 |" in out
    # The two-machine command, run twice on this machine with HOST = 127.0.0.1.
    two = Shell(tmp_path / "two")
    command = GROUPS["torchrun"][1]
    endpoint = f"127.0.0.1:{free_port()}"
    argv = two.argv(command, **{"HOST:29500": endpoint})
    procs = [subprocess.Popen(argv, cwd=two.cwd, env=two.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
    assert any("| s4gan | 2 | 16 |" in stdout for stdout, _ in outs)


@pytest.mark.slow
@pytest.mark.parametrize("command", GROUPS["benchmarks"])
def test_benchmark_commands(tmp_path, command):
    if command in NEEDS_CUDA:
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("a CUDA preset")
    Shell(tmp_path).run(command)  # EXTRA sends every output to tmp_path


# ------------------------------------------------------------------ --help, at once
@pytest.mark.parametrize(
    "script", sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "common.py")
)
def test_help_shows_defaults_without_loading_torch(script):
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{script!r}, '--help']\n"
        f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
        "try:\n"
        f"    runpy.run_path({str(EXAMPLES / script)!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip().splitlines()[-1] == "NO-TORCH"
    assert "(default: " in out and "--threads" in out


def test_threads_default_follows_omp_num_threads_else_half_the_cpus(monkeypatch):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import common
    finally:
        sys.path.remove(str(EXAMPLES))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert common.default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(common.os, "sched_getaffinity", lambda _: set(range(2)), raising=False)
    assert common.default_threads() == 1
    monkeypatch.setattr(common.os, "sched_getaffinity", lambda _: set(range(64)), raising=False)
    assert common.default_threads() == 4
