"""report.md: the same report as GitHub-flavoured Markdown, figures linked beside it."""

from __future__ import annotations

from raycv.report.document import Bullets, Document, Figure, Paragraph, Table


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(t: Table) -> list[str]:
    lines = [f"*{t.caption}*", ""] if t.caption else []
    lines.append("| " + " | ".join(_cell(c) for c in t.columns) + " |")
    align = [":---" if j in t.text_columns else "---:" for j in range(len(t.columns))]
    lines.append("| " + " | ".join(align) + " |")
    for i, row in enumerate(t.rows):
        flag = t.flagged is not None and t.flagged[i]
        # Markdown has no row colour: a flagged row is bold, so it stands out as in the HTML
        cells = [f"**{_cell(v)}**" if flag else _cell(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _block(block) -> list[str]:
    if isinstance(block, Paragraph):
        return [f"**{block.text}**" if block.strong else block.text]
    if isinstance(block, Bullets):
        return [f"- **{i}**" if block.strong else f"- {i}" for i in block.items]
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return [f"![{block.caption}]({block.path.name})", "", f"*{block.caption}*"]
    raise TypeError(f"no Markdown for {type(block).__name__}")


def render_markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", "", doc.subtitle, ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _block(block) + [""]
    return "\n".join(lines)
