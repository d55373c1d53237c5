"""SLIs and SLOs: the sample format, SLO maths, the SLI store, the monitor and the probes.

Experiments name the probes as ``module: inoculate.steady_state.probes``. Nothing is imported
here: the Locust subprocess imports ``inoculate.steady_state.samples`` and nothing more.

This folder is the package ``inoculate.steady_state`` (pyproject's ``package-dir``): the wheel
claims the one import name ``inoculate``. Imported under any other name (``import steady_state``
from a checkout) it would load twice as two different modules, so it refuses.
"""

if __name__ != "inoculate.steady_state":  # pragma: no cover - a wrong import fails here, loudly
    raise ImportError(
        f"{__file__} is the package inoculate.steady_state: import it by that name "
        "(install the project with `pip install -e .` or `make install`)"
    )
