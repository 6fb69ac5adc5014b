"""Tables on the console that never truncate a cell, and the same rows as CSV, JSON or Markdown.

``table`` (the default) prints a rich table when every cell fits the terminal at its full width (text columns may
fold onto several lines, numbers never); when it cannot fit, each row is printed as a block of ``column: value``
lines instead, so an 80-column terminal shows every digit and every URL.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "csv", "json", "markdown")


def plain(cell: Any) -> str:
    """A cell without rich markup."""
    from rich.text import Text

    return Text.from_markup(str(cell)).plain


def emit(console: Any, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table",
         numeric: Sequence[str] = (), wide_text: Sequence[str] = ()) -> None:
    """Print ``rows`` under ``columns`` in ``fmt``; ``numeric`` columns are right-aligned and never wrapped;
    ``wide_text`` columns (descriptions) may fold onto as many lines as they need."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[plain(c) for c in row] for row in rows])
        print(buffer.getvalue(), end="", flush=True)
    elif fmt == "json":
        print(json.dumps([dict(zip(columns, [plain(c) for c in row], strict=True)) for row in rows], indent=1),
              flush=True)
    elif fmt == "markdown":
        escape = lambda text: plain(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines = [f"| {' | '.join(columns)} |", f"|{'|'.join('---:' if c in numeric else '---' for c in columns)}|"]
        lines += [f"| {' | '.join(escape(c) for c in row)} |" for row in rows]
        print(f"**{title}**\n\n" + "\n".join(lines), flush=True)
    elif fmt == "table":
        _table(console, title, columns, rows, set(numeric), set(wide_text))
    else:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def _needed_width(columns: Sequence[str], rows: Sequence[Sequence[Any]], wide_text: set[str]) -> int:
    """Width of the table with every non-folding cell at full length (folding columns count 20 characters)."""
    total = 1
    for i, column in enumerate(columns):
        longest = max([len(column)] + [max((len(line) for line in plain(row[i]).splitlines()), default=0)
                                        for row in rows])
        total += (min(longest, 20) if column in wide_text else longest) + 3
    return total


def _table(console: Any, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[str],
           wide_text: set[str]) -> None:
    from rich.table import Table

    if _needed_width(columns, rows, wide_text) > console.width:
        console.print(f"[bold]{title}[/bold]")
        for row in rows:
            console.print(f"[bold]{row[0]}[/bold]")
            for column, cell in zip(columns[1:], row[1:], strict=True):
                console.print(f"  {column}: {cell}", soft_wrap=False, overflow="fold")
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        if column in numeric:
            table.add_column(column, justify="right", no_wrap=True)
        else:
            table.add_column(column, overflow="fold", no_wrap=column not in wide_text)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    console.print(table)
