"""Plain-text tables for the terminal, laid out by rich (no colours, no borders)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table


def render_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, right: Iterable[int] = (), indent: int = 0
) -> str:
    """``header`` and ``rows`` in aligned columns two spaces apart; columns in ``right`` right-aligned."""
    right = set(right)
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 1), header_style="")
    for index, title in enumerate(header):
        table.add_column(title, justify="right" if index in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=1000, color_system=None, highlight=False, soft_wrap=True).print(table)
    return "\n".join(" " * indent + line.rstrip() for line in buffer.getvalue().splitlines() if line.strip())
