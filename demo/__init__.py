"""The embedded demo systems: the shop (``demo/shop``) and the shop in Docker.

They register themselves in the ``inoculate.systems`` entry-point group; the engine never
names them. Kept free of imports so that each service process loads only what it uses.

This folder is the package ``inoculate.demo`` (pyproject's ``package-dir``): the wheel
claims the one import name ``inoculate``. Imported under any other name (``import demo``
from a checkout) it would load twice as two different modules, so it refuses.
"""

if __name__ != "inoculate.demo":  # pragma: no cover - a wrong import fails here, loudly
    raise ImportError(
        f"{__file__} is the package inoculate.demo: import it by that name "
        "(install the project with `pip install -e .` or `make install`)"
    )
