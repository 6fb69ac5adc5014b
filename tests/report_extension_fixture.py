"""A report extension's section function, as a plugin package would provide it (used by test_report_site)."""

from __future__ import annotations

from html import escape
from typing import Any


def sections(page: str, context: dict[str, Any]) -> list[dict[str, str]]:
    if page != "run":
        return []
    return [{"title": "Extension section", "html": f"<p id='ext'>units: {escape(str(len(context['units'])))}</p>"}]
