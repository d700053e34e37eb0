"""A run's report: a Markdown page for people and a JSON file for programs, side by side.

Sections are (heading, rows of (figure, value)) tables; figures are PNG files in
the same folder, linked by name.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Rows = Sequence[tuple[str, str]]


@dataclass
class Report:
    """What one ``facegate evaluate``/``calibrate`` run found."""

    title: str
    command: str = ""
    sections: list[tuple[str, Rows]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, heading: str, rows: Rows) -> None:
        self.sections.append((heading, list(rows)))

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        if self.command:
            lines += ["```", self.command, "```", ""]
        for heading, rows in self.sections:
            lines += [f"## {heading}", "", "| figure | value |", "|---|---|"]
            lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
            lines.append("")
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        if self.figures:
            lines += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in self.figures] + [""]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "command": self.command,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "notes": self.notes,
            "figures": [f.name for f in self.figures],
            **self.data,
        }

    def write(self, out: str | Path) -> tuple[Path, Path]:
        """Write ``report.md`` and ``report.json`` into ``out`` and return their paths."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        md = folder / "report.md"
        js = folder / "report.json"
        md.write_text(self.markdown(), encoding="utf-8")
        js.write_text(json.dumps(_jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return md, js


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _jsonable(x: Any) -> Any:
    """Plain JSON: infinities and NaN become null, numpy scalars become numbers."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def format_table(rows: Rows, title: str = "") -> str:
    """Rows as an aligned plain-text table for the terminal."""
    width = max((len(k) for k, _ in rows), default=0)
    lines = [title, "-" * len(title)] if title else []
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)
