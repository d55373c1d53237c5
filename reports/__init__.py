"""Reports: run directory + typed run summary → score → HTML / Markdown / JUnit / JSON;
history; runbook feedback. Never imports the runner.

The public API is ``__all__``, each name loaded from its module on first use (PEP 562): the
package imports nothing up front, so a command that writes no report never loads matplotlib,
and no module of the package depends on this one.

This folder is the package ``inoculate.reports`` (pyproject's ``package-dir``): the wheel
claims the one import name ``inoculate``. Imported under any other name (``import reports``
from a checkout) it would load twice as two different modules, so it refuses.
"""

if __name__ != "inoculate.reports":  # pragma: no cover - a wrong import fails here, loudly
    raise ImportError(
        f"{__file__} is the package inoculate.reports: import it by that name "
        "(install the project with `pip install -e .` or `make install`)"
    )


import importlib
from typing import Any

_EXPORTS = {
    "FORMATS": "formats",
    "Finding": "findings",
    "GateVerdict": "suite",
    "History": "history",
    "HistoryError": "inoculate.model.errors",
    "Published": "publish",
    "ReportError": "inoculate.model.errors",
    "ReportInputError": "inoculate.model.errors",
    "RunReport": "model",
    "RunbookError": "inoculate.model.errors",
    "Score": "score",
    "ScoreInput": "score",
    "SuiteEntry": "suite",
    "SuiteReport": "suite",
    "build_run_report": "model",
    "build_suite": "suite",
    "default_history_path": "history",
    "judge_gate": "suite",
    "parse_formats": "formats",
    "publish_run": "publish",
    "score_run": "score",
    "suite_score": "score",
    "update_runbook": "runbook",
    "write_run_reports": "publish",
    "write_suite_reports": "publish",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    qualified = module if "." in module else f"{__name__}.{module}"
    return getattr(importlib.import_module(qualified), name)
