"""A tiny neutral document model and its Markdown and HTML renderings.

The report is built once as a :class:`Doc` so ``report.md`` and ``report.html`` cannot
drift apart. Paragraph text knows two inline forms, ``**strong**`` and `` `code` ``;
everything else is literal. Both renderers escape every character that means something
in their output, so registry-controlled text (error messages, journal lines) is inert.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

__all__ = ["Doc", "Para", "Pre", "Section", "Table", "to_html", "to_markdown"]

_VERDICTS = (
    "PASS", "FAIL", "NON-STRICT", "INFORMATIONAL", "UNSUPPORTED",
    "SKIPPED", "ERROR", "XFAIL", "XPASS", "CRASH",
)  # fmt: skip
_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")
_SPACES = re.compile(r"(\s+)")
_AFTER_SEPARATOR = re.compile(r"(?<=[/_.,;=@\[\]-])|(?<=:)(?!:)")
_RUN = 20
#: Short forms of the long verdict names, for grid columns in HTML.
_SHORT = {
    "NON-STRICT": "N-STR",
    "INFORMATIONAL": "INFO",
    "UNSUPPORTED": "UNSUP",
    "SKIPPED": "SKIP",
}


@dataclass(frozen=True)
class Para:
    """A paragraph with optional ``**strong**`` and `` `code` `` spans."""

    text: str


@dataclass(frozen=True)
class Pre:
    """Preformatted evidence, shown under a label."""

    text: str
    label: str = ""


@dataclass(frozen=True)
class Table:
    """A table; cells equal to a verdict name, or under a verdict column, get its colour.

    ``grid_from``: the columns from this index on are a grid of verdicts (one column
    per runtime). In HTML their headers are set vertically and their long verdict
    names abbreviated (the full name in the ``abbr`` title, a legend above the
    table), so many columns fit an 800 px page; Markdown shows them unchanged.
    """

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    grid_from: int | None = None


Block = Para | Pre | Table


@dataclass(frozen=True)
class Section:
    """A titled run of blocks."""

    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Doc:
    """A whole report."""

    title: str
    intro: tuple[Block, ...]
    sections: tuple[Section, ...]


# ---------------------------------------------------------------------------- Markdown


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&#|~])")


def _md_escape(text: str) -> str:
    # CommonMark backslash escapes: `<hex>` reads as itself in the raw file and in a
    # viewer, and never becomes HTML (entities showed as `&lt;hex&gt;` in the file).
    return _MD_SPECIAL.sub(r"\\\1", text)


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def _md_inline(text: str) -> str:
    out, pos = [], 0
    for match in _INLINE.finditer(text):
        out.append(_md_escape(text[pos : match.start()]))
        strong, code = match.groups()
        out.append(
            f"**{_md_escape(strong)}**" if strong is not None else _md_code(code)
        )
        pos = match.end()
    out.append(_md_escape(text[pos:]))
    return "".join(out)


def _md_code(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_cell(text: str) -> str:
    flat = " ".join(text.split())
    return _md_escape(flat) or " "


def _md_block(block: Block) -> str:
    if isinstance(block, Para):
        return _md_inline(block.text)
    if isinstance(block, Pre):
        longest = max((len(run) for run in re.findall(r"`{3,}", block.text)), default=2)
        fence = "`" * (longest + 1)
        label = f"*{_md_escape(block.label)}*\n\n" if block.label else ""
        return f"{label}{fence}text\n{block.text.rstrip()}\n{fence}"
    lines = [
        "| " + " | ".join(_md_cell(h) for h in block.header) + " |",
        "|" + "|".join("---" for _ in block.header) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
    return "\n".join(lines)


def to_markdown(doc: Doc) -> str:
    """Render *doc* as Markdown."""
    parts = [f"# {_md_escape(doc.title)}"]
    parts += [_md_block(b) for b in doc.intro]
    parts.append(
        "\n".join(
            f"- [{_md_escape(s.title)}](#{_anchor(s.title)})" for s in doc.sections
        )
    )
    for section in doc.sections:
        parts.append(f"## {_md_escape(section.title)}")
        parts += [_md_block(b) for b in section.blocks]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:1em 2em;color:#1d1d1f;max-width:80em}
nav ul{columns:2;margin:.4em 0}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;max-width:100%}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top;
overflow-wrap:break-word}
th,td.w,td[class^="v-"]{white-space:nowrap;overflow-wrap:normal}
th{background:#f2f2f2}code{background:#f4f4f4;padding:0 .2em;overflow-wrap:anywhere}
th.rot{vertical-align:bottom;padding:.4em .2em}
th.rot span{display:inline-block;writing-mode:vertical-rl;transform:rotate(180deg)}
table.grid td[class^="v-"]{text-align:center;font-size:.8em;padding:.3em .25em}
div.grid{overflow-x:auto}abbr{text-decoration:none}p.legend{font-size:.9em;color:#555;margin:.2em 0}
@media (max-width:60em){body{margin:.5em 1em}}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.5em;overflow-x:auto;white-space:pre-wrap;
overflow-wrap:anywhere}
details{margin:.3em 0 .8em 1em}summary{cursor:pointer;color:#555}
.v-PASS{background:#d8f5d8}.v-FAIL{background:#f8c9c9}.v-NON-STRICT{background:#fde3b8}
.v-INFORMATIONAL{background:#d6e6fb}.v-UNSUPPORTED{background:#e6e6e6}
.v-SKIPPED{background:#f1f1f1}.v-ERROR{background:#e8d3f5}.v-XFAIL{background:#d3f0ee}
.v-XPASS{background:#f7c8ec}.v-CRASH{background:#b71c1c;color:#fff}
"""


def _html_inline(text: str) -> str:
    out, pos = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[pos : match.start()]))
        strong, code = match.groups()
        if strong is not None:
            cls = f' class="v-{strong}"' if strong in _VERDICTS else ""
            out.append(f"<strong{cls}>{html.escape(strong)}</strong>")
        else:
            out.append(f"<code>{html.escape(code)}</code>")
        pos = match.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _breakable(text: str) -> str:
    """Escaped *text* whose long tokens may wrap: after a separator, else every 20 chars.

    Test IDs, paths and digests have no spaces; without break points a table column
    is as wide as the longest of them, and without a limit a browser may split any
    word anywhere (``overflow-wrap: anywhere``) to squeeze a column.
    """
    out: list[str] = []
    for piece in _SPACES.split(text):
        if len(piece) <= _RUN:
            out.append(html.escape(piece))
            continue
        parts = [
            seg[i : i + _RUN]
            for seg in _AFTER_SEPARATOR.split(piece)
            for i in range(0, len(seg), _RUN)
        ]
        out.append("<wbr>".join(html.escape(part) for part in parts))
    return "".join(out)


def _html_cell(text: str, column: str, *, grid: bool = False) -> str:
    verdict = (
        text if text in _VERDICTS else column if column in _VERDICTS and text else ""
    )
    # A short single word (an ID, a level, a verdict) never breaks mid-word.
    word = len(text) <= 24 and not any(ch.isspace() for ch in text)
    cls = f' class="v-{verdict}"' if verdict else ' class="w"' if word else ""
    shown = html.escape(text) if verdict or word else _breakable(text)
    if grid and text in _SHORT:
        shown = f'<abbr title="{shown}">{_SHORT[text]}</abbr>'
    return f"<td{cls}>{shown}</td>"


def _html_table(block: Table) -> str:
    grid = len(block.header) if block.grid_from is None else block.grid_from
    head = "".join(
        f"<th>{html.escape(h)}</th>"
        if i < grid
        else f'<th class="rot"><span>{html.escape(h)}</span></th>'
        for i, h in enumerate(block.header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            _html_cell(c, h, grid=i >= grid)
            for i, (c, h) in enumerate(zip(row, block.header, strict=False))
        )
        + "</tr>"
        for row in block.rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if block.grid_from is None:
        return table
    used = {c for row in block.rows for c in row[grid:]}
    legend = ", ".join(
        f"{short} = {name}" for name, short in _SHORT.items() if name in used
    )
    legend = f'<p class="legend">{html.escape(legend)}</p>' if legend else ""
    # Past about ten runtime columns even the short forms cannot fit 800 px: the
    # grid then scrolls inside its own box, never the page.
    grid_table = table.replace("<table>", '<table class="grid">', 1)
    return f'{legend}<div class="grid">{grid_table}</div>'


def _html_block(block: Block) -> str:
    if isinstance(block, Para):
        return f"<p>{_html_inline(block.text)}</p>"
    if isinstance(block, Pre):
        summary = html.escape(block.label or "evidence")
        return f"<details open><summary>{summary}</summary><pre>{html.escape(block.text)}</pre></details>"
    return _html_table(block)


def to_html(doc: Doc) -> str:
    """Render *doc* as one self-contained HTML page (inline CSS, no external assets)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(doc.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(doc.title)}</h1>",
    ]
    parts += [_html_block(b) for b in doc.intro]
    parts.append(
        "<nav><strong>Contents</strong><ul>"
        + "".join(
            f'<li><a href="#{_anchor(s.title)}">{html.escape(s.title)}</a></li>'
            for s in doc.sections
        )
        + "</ul></nav>"
    )
    for section in doc.sections:
        parts.append(
            f'<h2 id="{_anchor(section.title)}">{html.escape(section.title)}</h2>'
        )
        parts += [_html_block(b) for b in section.blocks]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
