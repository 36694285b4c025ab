"""The HTML report and the runtime matrix fit the page at 800 and 1400 px.

The markup is checked here in-process; whether it fits is checked in headless Chromium
(``interop``: it needs Debian's ``chromium``), with a probe that measures the page's
scroll width and every top-level block's right edge after layout.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cri_conformance._render import Doc, Section, Table, to_html, to_markdown
from cri_conformance.catalog import load_catalog
from cri_conformance.matrix import RuntimeRun, matrix_document
from cri_conformance.report import CaseResult, RunReport, render_html
from cri_conformance.verdicts import Verdict

RUNTIMES = (
    "containerd-seed",
    "containerd-1.6.20",
    "containerd-1.7.34",
    "containerd-2.0.11",
    "containerd-2.3.4",
    "crio-1.36.3",
)
DIGEST = "sha256:" + "0123456789abcdef" * 4


def _matrix_doc() -> Doc:
    """Every runtime built, every behaviour, the long verdict names in every column."""
    catalog = load_catalog()
    verdicts = itertools.cycle(list(Verdict))
    runs = [
        RuntimeRun(
            name=name,
            target="containerd",
            profile="p",
            cells={b.id: next(verdicts) for b in catalog},
            headline="297 of 297 cases reached a verdict.",
        )
        for name in RUNTIMES
    ]
    return matrix_document(runs, catalog)


def _report() -> RunReport:
    """Security cases with long node IDs, digests and paths, every verdict seen.

    Every verdict is a column of the behaviour x verdict matrix section.
    """
    catalog = load_catalog()
    security = [b.id for b in catalog if b.level == "SECURITY"]
    cases = tuple(
        CaseResult(
            nodeid=(
                "conformance/suite/test_hostile_registry.py::"
                f"test_a_decompression_bomb_is_refused_without_filling_the_disk[{bid}]"
            ),
            behaviors=(bid, security[(i + 1) % len(security)]),
            level="SECURITY",
            verdict=list(Verdict)[i % len(Verdict)],
            target="containerd",
            profile="containerd-1.6",
            message=f"failed to copy {DIGEST}: /var/lib/containerd/io.containerd."
            "content.v1.content/ingest/" + "f" * 64 + "/data: no space left",
            expected="containerd 1.6 unpacks before it checks the size (upstream "
            "https://github.com/containerd/containerd/issues/00000)",
        )
        for i, bid in enumerate(security)
    )
    return RunReport(
        target="containerd", profile="containerd-1.6", cases=cases, catalog=catalog
    )


def test_grid_columns_are_rotated_and_long_verdicts_abbreviated_in_html_only() -> None:
    table = Table(
        ("behaviour", "title", "containerd-1.6.20", "crio-1.36.3"),
        (("CRI-002", "Repo tag and repo digest", "UNSUPPORTED", "PASS"),),
        grid_from=2,
    )
    doc = Doc("t", (), (Section("s", (table,)),))
    page = to_html(doc)
    assert (
        '<p class="legend">UNSUP = UNSUPPORTED</p><div class="grid"><table class="grid">'
        "<thead><tr><th>behaviour</th><th>title</th>"
        '<th class="rot"><span>containerd-1.6.20</span></th>'
        '<th class="rot"><span>crio-1.36.3</span></th></tr></thead>'
        '<tbody><tr><td class="w">CRI-002</td><td>Repo tag and repo digest</td>'
        '<td class="v-UNSUPPORTED"><abbr title="UNSUPPORTED">UNSUP</abbr></td>'
        '<td class="v-PASS">PASS</td></tr></tbody></table></div>'
    ) in page
    assert "| CRI-002 | Repo tag and repo digest | UNSUPPORTED | PASS |" in to_markdown(
        doc
    )


def test_long_tokens_get_break_points_and_short_words_none() -> None:
    table = Table(("case",), ((f"suite/test_a.py::test_b[<x>] {DIGEST} ok",),))
    page = to_html(Doc("t", (), (Section("s", (table,)),)))
    assert (
        "<td>suite/<wbr>test_<wbr>a.<wbr>py::<wbr>test_<wbr>b[<wbr>&lt;x&gt;] "
        "sha256:<wbr>0123456789abcdef0123<wbr>456789abcdef01234567<wbr>"
        "89abcdef0123456789ab<wbr>cdef ok</td>"
    ) in page


def test_the_runtime_matrix_uses_the_grid_for_every_behaviour_table() -> None:
    doc = _matrix_doc()
    grids = [
        s.title
        for s in doc.sections
        for b in s.blocks
        if isinstance(b, Table) and b.grid_from == 3
    ]
    plain = [
        s.title
        for s in doc.sections
        for b in s.blocks
        if isinstance(b, Table) and b.grid_from is None
    ]
    assert plain == ["Changed between versions"]
    assert grids[:2] == ["Security behaviours", "CRI-wide behaviours"]
    assert all(t.startswith("Area ") for t in grids[2:])


# ------------------------------------------------------------------ in Chromium

_PROBE = """<script>
window.addEventListener('load', () => {
  const width = document.documentElement.clientWidth;
  const style = getComputedStyle(document.body);
  const inner = document.body.getBoundingClientRect().right
    - parseFloat(style.paddingRight);
  const wide = [];
  for (const el of document.querySelectorAll('body > *')) {
    const right = el.getBoundingClientRect().right;
    if (right > inner + 0.5) wide.push(el.tagName + ' ' + el.textContent.slice(0, 40));
  }
  const out = document.createElement('pre');
  out.id = 'layout-probe';
  out.textContent = JSON.stringify({width, scroll: document.documentElement.scrollWidth,
    wide});
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    pytest.fail("the layout check needs Chromium: apt-get install -y chromium")


def _layout(page: str, width: int, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / f"page-{width}.html"
    path.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--in-process-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},3000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, (
        f"Chromium gave no layout (exit {done.returncode}): {done.stderr[-800:]}"
    )
    result: dict[str, object] = json.loads(html.unescape(found.group(1)))
    return result


@pytest.mark.interop
@pytest.mark.parametrize("width", [800, 1400])
@pytest.mark.parametrize("kind", ["report", "matrix"])
def test_the_page_never_scrolls_sideways(kind: str, width: int, tmp_path: Path) -> None:
    page = render_html(_report()) if kind == "report" else to_html(_matrix_doc())
    assert _layout(page, width, tmp_path) == {
        "width": width,
        "scroll": width,
        "wide": [],
    }
