"""Plain-text output for the terminal: numbers and tables (no dependency)."""

from __future__ import annotations


def fmt_num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return f"{v:,}"


def render_table(headers: list[str], rows: list[list], right: set[int] | None = None) -> str:
    """A plain-text table (no dependency), numbers right-aligned."""
    right = right if right is not None else set(range(1, len(headers)))
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt_num(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep, *[line(r) for r in cells[1:]]])
