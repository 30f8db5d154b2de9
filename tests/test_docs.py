"""The docs keep up with the code: every public name has an API entry, every example is
shown on the Recipes page. String checks, no docs build (CI runs `mkdocs build --strict`)."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import s4seg

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API_PAGES = sorted((DOCS / "api").glob("*.md"))
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.M)


def api_text() -> str:
    return "\n".join(page.read_text() for page in API_PAGES)


def resolve(path: str) -> Any:
    """The object a mkdocstrings identifier names: the longest importable module, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(path)


# Imported only where it runs: Triton reads TRITON_INTERPRET when the kernel module is
# imported, and the kernel tests must be the ones that decide it. Its public entry point
# is reached through s4seg.ops.confidence_masked_cross_entropy (documented).
NOT_IMPORTED = {"s4seg.ops.triton_confidence_masked_ce"}


def public_modules() -> list[ModuleType]:
    """s4seg and its submodules (not ``__main__``, which is the CLI, nor NOT_IMPORTED)."""
    modules = [s4seg]
    for info in pkgutil.walk_packages(s4seg.__path__, "s4seg."):
        if info.name.rsplit(".", 1)[-1].startswith("_") or info.name in NOT_IMPORTED:
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except ModuleNotFoundError as err:  # an optional dependency (triton) is absent
            if err.name and err.name.split(".")[0] == "s4seg":
                raise
    return modules


def public_names() -> list[tuple[str, str]]:
    """(module, name) for every name in the ``__all__`` of s4seg and of its submodules."""
    return sorted({(m.__name__, n) for m in public_modules() for n in getattr(m, "__all__", ())})


def test_api_pages_exist_and_are_nonempty() -> None:
    assert API_PAGES, "docs/api/*.md is missing"
    assert DIRECTIVE.findall(api_text())


def test_every_api_directive_resolves() -> None:
    for path in DIRECTIVE.findall(api_text()):
        assert path.startswith("s4seg"), path
        resolve(path)  # raises on a stale path


def test_every_public_name_is_documented() -> None:
    documented = [resolve(path) for path in DIRECTIVE.findall(api_text())]
    text = api_text()
    missing = []
    for module, name in public_names():
        obj = getattr(importlib.import_module(module), name)
        if name == "__version__":
            if "__version__" not in text:
                missing.append(f"{module}.{name}")
        elif not any(obj is d for d in documented):
            missing.append(f"{module}.{name}")
    assert not missing, (
        "public names without a `::: s4seg....` entry in docs/api/*.md: " + ", ".join(missing)
    )


def test_top_level_all_is_covered() -> None:
    # The walk above includes s4seg itself; make sure it really did.
    names = {n for m, n in public_names() if m == "s4seg"}
    assert names == set(s4seg.__all__)


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_every_example_is_included_in_recipes(script: str) -> None:
    recipes = (DOCS / "recipes.md").read_text()
    assert f'--8<-- "examples/{script}"' in recipes, (
        f"examples/{script} is not included in docs/recipes.md; add a block with "
        f'--8<-- "examples/{script}"'
    )


def test_recipes_include_only_existing_files() -> None:
    recipes = (DOCS / "recipes.md").read_text()
    for path in re.findall(r'--8<-- "([^"]+)"', recipes):
        assert (ROOT / path).is_file(), path


def test_filter_and_schedule_snippets_run() -> None:
    # The constructor calls shown on the concepts page build real objects.
    text = (DOCS / "concepts" / "filters.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        exec(compile("import s4seg\n" + block, "docs/concepts/filters.md", "exec"), {})


def load_hooks() -> ModuleType:
    # The hooks run inside mkdocs (the docs extra). Without it these tests skip; CI
    # installs the extra after the README's test command and runs them with the build.
    pytest.importorskip(
        "mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'"
    )
    spec = importlib.util.spec_from_file_location("s4seg_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_hook_renders_a_kernel_csv(tmp_path: Path) -> None:
    hooks = load_hooks()
    columns = "run_id,git_sha,device,torch,triton,provider,mode,batch,classes,height,width,dtype,"
    columns += "ms_p50,gbps,frac_of_copy,status,note"
    rows = [
        # an older run of the same device: must not be shown
        "2026-01-01T00:00:00Z,aaa,NVIDIA H100,2.14.1,3.8.0,eager,full,8,21,321,321,float32,"
        "9.0,1,0.1,ok,",
        "2026-02-01T00:00:00Z,bbb,NVIDIA H100,2.14.1,3.8.0,eager,full,8,21,321,321,float32,"
        "0.300,1,0.1,ok,",
        "2026-02-01T00:00:00Z,bbb,NVIDIA H100,2.14.1,3.8.0,compile,full,8,21,321,321,float32,"
        "0.120,1,0.1,ok,",
        "2026-02-01T00:00:00Z,bbb,NVIDIA H100,2.14.1,3.8.0,triton,full,8,21,321,321,float32,"
        "0.075,2600,0.87,ok,",
    ]
    csv_path = tmp_path / "results.csv"
    csv_path.write_text(columns + "\n" + "\n".join(rows) + "\n")
    md = hooks._kernel_section(csv_path, "results.csv", files=None, config=None)
    assert "### Device: NVIDIA H100" in md
    assert "4 rows from 2 run(s)" in md
    # triton / eager = 0.075 / 0.300, triton / compile = 0.075 / 0.120, compile / eager = 0.4
    line = next(row for row in md.splitlines() if row.startswith("| 8, 21, 321×321"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3:11] == ["0.300", "0.120", "0.075", "0.25", "0.62", "0.40", "2600", "87%"]
    assert "9.000" not in md  # the older run is left out


def test_benchmark_hook_notes_a_missing_csv(tmp_path: Path) -> None:
    md = load_hooks()._kernel_section(tmp_path / "absent.csv", "absent.csv", None, None)
    assert "Not measured yet" in md


def test_getting_started_has_the_readme_setup_commands_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert len(commands) >= 2
    page = (DOCS / "getting-started.md").read_text()
    for command in commands[:2]:
        assert command in page, f"README command not on getting-started.md: {command}"


def test_getting_started_gives_cpu_users_the_cpu_wheel_index() -> None:
    # The README's main-job command, with only the CPU wheel index added to its torch install.
    readme = (ROOT / "README.md").read_text()
    main_job = re.findall(r"```bash\n(.*?)```", readme, re.S)[0].strip()
    torch_install = "pip install torch==2.14.1 torchvision==0.29.1"
    assert torch_install in main_job
    cpu = main_job.replace(
        torch_install, torch_install + " --index-url https://download.pytorch.org/whl/cpu"
    )
    assert f"```bash\n{cpu}\n```" in (DOCS / "getting-started.md").read_text()


def test_the_site_builds_and_works_offline(tmp_path: Path) -> None:
    # The docs extra builds the site; without it this test skips (CI installs it).
    pytest.importorskip(
        "mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'"
    )
    pytest.importorskip("latex2mathml", reason="the docs extra is not installed")
    import subprocess
    import sys

    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (site / "concepts" / "method.html").read_text()
    # The equations are MathML, rendered at build time: no TeX left for a script to typeset.
    assert page.count("<math") >= 30 and 'display="block"' in page
    assert "\\(" not in page and "\\[" not in page
    for html in site.rglob("*.html"):
        text = html.read_text()
        # Nothing is fetched from the network: no remote script, stylesheet or font.
        assert not re.search(r'<script[^>]+src="https?://', text), html
        assert not re.search(r'<link[^>]+href="https?://', text), html
        # Links between pages name .html files, which open from file:// as well.
        for target in re.findall(r'href="([^"#:]+)"', text):
            assert not target.endswith("/"), (html, target)
