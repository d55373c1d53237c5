"""``python -m inoculate.cli``: the same as the ``inoculate`` console script."""

from inoculate.cli import main

main()
