"""The report formats and their file names (importing this loads nothing heavy)."""

from __future__ import annotations

from inoculate.model.layout import REPORT_FILES

__all__ = ["FORMATS", "RUN_FILES", "SUITE_FILES", "parse_formats"]

FORMATS: tuple[str, ...] = ("html", "md", "junit", "json")
RUN_FILES = dict(REPORT_FILES)
SUITE_FILES = {fmt: f"suite-{name}" for fmt, name in REPORT_FILES.items()}


def parse_formats(text: str) -> tuple[str, ...]:
    """``"html,md"`` → ``("html", "md")``; raises ValueError naming the known formats."""
    wanted = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [fmt for fmt in wanted if fmt not in FORMATS]
    if unknown or not wanted:
        raise ValueError(
            f"unknown format(s) {', '.join(unknown) or '(none given)'}; "
            f"expected a comma-separated list of {', '.join(FORMATS)}"
        )
    return tuple(dict.fromkeys(wanted))
