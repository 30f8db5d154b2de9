"""mkdocs hooks: render the committed benchmark results into docs/benchmarks.md at build time.

The page holds markers; this hook replaces them, so the published numbers are always
the committed ones and the build passes whether or not a result file exists yet:

``<!-- s4seg:kernel benchmarks/kernel/results.csv -->``
    The fused-kernel CSV: for each device's latest run, a table of median times and
    ratios, with the device named, and the plot that ``benchmarks/kernel/report.py``
    draws from the same rows (rendered here, at build time).
``<!-- s4seg:csv benchmarks/step/results.csv -->``
    Any results CSV with ``run_id`` and ``device`` columns: each device's latest run
    as a table, with the device and versions named above it.
``<!-- s4seg:results docs/quality -->``
    A results folder: every ``*.md`` included as is, every ``*.csv`` as a table, every
    ``*.png`` shown.

It also strips Sphinx roles (``:class:``, ``:func:`` ...) that some docstrings use, so
the API pages show ``Trainer`` rather than ``:class:Trainer``, and renders the equations
(``pymdownx.arithmatex``'s ``\\( \\)`` and ``\\[ \\]``) to MathML at build time with
``latex2mathml``: browsers draw MathML themselves, so the pages need no script and no
network to show them, from a server or from disk. An equation latex2mathml cannot
convert fails the strict build.

A missing file or folder renders a short "not measured yet" note. A result file that
exists but cannot be read fails the build (mkdocs --strict turns the warning into an
error), so broken numbers never reach the site quietly.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import math
import re
import tempfile
from collections import defaultdict
from html import unescape
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
PAGE = "benchmarks.md"
# A Sphinx role before inline code, as mkdocstrings renders it: ":class:<code>".
SPHINX_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const):(?=<code>)")
MARKER = re.compile(r"<!--\s*s4seg:(kernel|csv|results)\s+(\S+)\s*-->")
# pymdownx.arithmatex in generic mode: <span class="arithmatex">\(x\)</span> inline,
# <div class="arithmatex">\[x\]</div> for a block.
MATH = re.compile(r'<(span|div) class="arithmatex">\s*\\([(\[])(.*?)\\[)\]]\s*</\1>', re.S)
GENERATED = "assets/generated"  # where the build-time plots live in the site
PROVIDERS = ("eager", "compile", "triton")
MODES = ("forward", "backward", "full")

log = logging.getLogger("mkdocs.hooks.s4seg")

# marker text -> markdown; filled by on_files, read by on_page_markdown.
_rendered: dict[str, str] = {}


def on_files(files: Files, config: Any) -> Files:
    """Render every marker of the benchmarks page; add the plots it needs as site files."""
    _rendered.clear()
    page = files.get_file_from_path(PAGE)
    if page is None or page.abs_src_path is None:
        return files
    text = Path(page.abs_src_path).read_text()
    for match in MARKER.finditer(text):
        kind, rel = match.groups()
        try:
            if kind == "kernel":
                md = _kernel_section(ROOT / rel, rel, files, config)
            elif kind == "csv":
                md = _csv_section(ROOT / rel, rel)
            else:
                md = _results_section(ROOT / rel, rel, files, config)
        except Exception as err:  # a broken result file must fail the strict build
            log.warning("benchmarks: cannot render %s: %s: %s", rel, type(err).__name__, err)
            md = f"*Could not render `{rel}`: {err}*"
        _rendered[match.group(0)] = md
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    return MARKER.sub(lambda m: _rendered.get(m.group(0), m.group(0)), markdown)


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    return render_math(SPHINX_ROLE.sub("", html), page.file.src_uri)


def render_math(text: str, where: str = "") -> str:
    """Replace every arithmatex span or div of ``text`` with its MathML."""
    from latex2mathml.converter import convert  # the docs extra

    def one(match: re.Match[str]) -> str:
        tag, opener, tex = match.groups()
        display = "block" if opener == "[" else "inline"
        try:
            mathml = convert(unescape(tex).strip(), display=display)
        except Exception as err:  # a strict build fails on the warning
            log.warning("%s: cannot render the equation %r: %s", where, tex[:60], err)
            return match.group(0)
        return f'<{tag} class="arithmatex">{mathml}</{tag}>'

    return MATH.sub(one, text)


# ----------------------------------------------------------------------------- helpers
def _missing(rel: str, what: str) -> str:
    return f'!!! info "Not measured yet"\n    `{rel}` is not in this checkout. {what}\n'


def _add_image(files: Files, config: Any, name: str, content: bytes) -> str:
    """Register a generated image; return its path relative to the benchmarks page."""
    uri = f"{GENERATED}/{name}"
    old = files.get_file_from_path(uri)
    if old is not None:
        files.remove(old)
    files.append(File.generated(config, uri, content=content))
    return uri


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _fmt(value: float, spec: str) -> str:
    return "–" if math.isnan(value) else format(value, spec)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- kernel CSV
def _latest_runs(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """device -> the rows of that device's latest run (run ids are UTC timestamps)."""
    latest: dict[str, str] = {}
    for row in rows:
        latest[row["device"]] = max(latest.get(row["device"], ""), row["run_id"])
    grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        if row["run_id"] == latest[row["device"]]:
            grouped[row["device"]].append(row)
    # CUDA devices first: they are what the kernel is for.
    return dict(sorted(grouped.items(), key=lambda kv: (kv[0] == "cpu", kv[0])))


def _ms(row: dict[str, str] | None) -> float:
    if row is None or row.get("status") != "ok":
        return math.nan
    return _float(row.get("ms_p50"))


def _kernel_table(rows: list[dict[str, str]]) -> str:
    by_case: dict[tuple, dict[str, dict[str, str]]] = defaultdict(dict)
    for row in rows:
        key = (
            int(row["batch"]),
            int(row["classes"]),
            int(row["height"]),
            int(row["width"]),
            row["dtype"],
            MODES.index(row["mode"]) if row["mode"] in MODES else len(MODES),
            row["mode"],
        )
        by_case[key][row["provider"]] = row
    header = [
        "shape (B, C, H×W)",
        "dtype",
        "mode",
        "eager ms",
        "compile ms",
        "triton ms",
        "triton / eager",
        "triton / compile",
        "compile / eager",
        "triton GB/s",
        "triton, share of copy bandwidth",
    ]
    table = []
    for key in sorted(by_case):
        b, c, h, w, dtype, _, mode = key
        prov = by_case[key]
        eager, comp, tri = (_ms(prov.get(p)) for p in PROVIDERS)
        t_row = prov.get("triton")
        ok = t_row is not None and t_row.get("status") == "ok"
        gbps = _float(t_row.get("gbps")) if ok and t_row else math.nan
        share = _float(t_row.get("frac_of_copy")) if ok and t_row else math.nan
        table.append(
            [
                f"{b}, {c}, {h}×{w}",
                dtype,
                mode,
                _fmt(eager, ".3f"),
                _fmt(comp, ".3f"),
                _fmt(tri, ".3f"),
                _fmt(tri / eager, ".2f"),
                _fmt(tri / comp, ".2f"),
                _fmt(comp / eager, ".2f"),
                _fmt(gbps, ".0f"),
                _fmt(share, ".0%"),
            ]
        )
    return _md_table(header, table)


def _load_report(path: Path) -> Any | None:
    """benchmarks/kernel/report.py as a module, for its plot (None when absent)."""
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("s4seg_docs_kernel_report", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kernel_section(path: Path, rel: str, files: Files, config: Any) -> str:
    if not path.is_file():
        return _missing(rel, "Run `python -m benchmarks.kernel.run` and commit the CSV.")
    rows = _read_csv(path)
    if not rows:
        return _missing(rel, "The CSV has no rows yet.")
    n_runs = len({(r["device"], r["run_id"]) for r in rows})
    out = [
        f"`{rel}` holds {len(rows)} rows from {n_runs} run(s). Below is each device's latest run.\n"
    ]
    report = _load_report(path.parent / "report.py")
    for device, run_rows in _latest_runs(rows).items():
        first = run_rows[0]
        notes = sorted({r.get("note", "") for r in run_rows if r.get("status") == "ok"} - {""})
        out.append(f"### Device: {device}\n")
        out.append(
            f"Run `{first['run_id']}`, git `{first['git_sha']}`, torch `{first['torch']}`, "
            f"triton `{first['triton']}`" + (f"; {'; '.join(notes)}" if notes else "") + ".\n"
        )
        out.append(_kernel_table(run_rows) + "\n")
        skipped = sorted(
            {(r["provider"], r.get("note", "")) for r in run_rows if r.get("status") != "ok"}
        )
        for provider, note in skipped:
            out.append(f"- `{provider}` skipped: {note}")
        if skipped:
            out.append("")
        if report is not None:
            with tempfile.TemporaryDirectory() as tmp:
                png = report.plot(device, run_rows, Path(tmp))
                if png is not None:
                    uri = _add_image(
                        files, config, f"kernel_{_slug(device)}.png", Path(png).read_bytes()
                    )
                    out.append(f"![median time per provider on {device}]({uri})\n")
    return "\n".join(out)


# ----------------------------------------------------------------------------- any run CSV
RUN_COLUMNS = ("run_id", "git_sha", "device", "torch", "triton")


def _csv_section(path: Path, rel: str) -> str:
    if not path.is_file():
        return _missing(rel, "Run its benchmark and commit the CSV.")
    rows = _read_csv(path)
    if not rows:
        return _missing(rel, "The CSV has no rows yet.")
    if not {"run_id", "device"} <= set(rows[0]):
        header = list(rows[0])
        return _md_table(header, [[r[h] for h in header] for r in rows]) + "\n"
    n_runs = len({(r["device"], r["run_id"]) for r in rows})
    out = [
        f"`{rel}` holds {len(rows)} rows from {n_runs} run(s). Below is each device's latest run.\n"
    ]
    for device, run_rows in _latest_runs(rows).items():
        first = run_rows[0]
        versions = ", ".join(f"{c} `{first[c]}`" for c in RUN_COLUMNS[3:] if first.get(c))
        out.append(f"### Device: {device}\n")
        out.append(
            f"Run `{first['run_id']}`, git `{first.get('git_sha', '?')}`"
            + (f", {versions}" if versions else "")
            + ".\n"
        )
        header = [h for h in first if h not in RUN_COLUMNS]
        out.append(_md_table(header, [[r[h] for h in header] for r in run_rows]) + "\n")
    return "\n".join(out)


# ----------------------------------------------------------------------------- results folder
def _results_section(folder: Path, rel: str, files: Files, config: Any) -> str:
    if not folder.is_dir():
        return _missing(rel, "Commit result tables (`*.md`, `*.csv`) and plots there.")
    out = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".md":
            out.append(f"**`{rel}/{path.name}`**\n\n{path.read_text().strip()}\n")
        elif path.suffix == ".csv":
            rows = _read_csv(path)
            header = list(rows[0]) if rows else []
            out.append(
                f"**`{rel}/{path.name}`**\n\n"
                + _md_table(header, [[r[h] for h in header] for r in rows])
                + "\n"
            )
        elif path.suffix == ".png":
            uri = _add_image(files, config, f"{_slug(rel)}_{path.name}", path.read_bytes())
            out.append(f"![{path.stem}]({uri})\n")
    return "\n".join(out) if out else _missing(rel, "The folder is empty.")
