"""One slice of a long run's ``sli.jsonl``, decoded in a process of its own.

``python -m inoculate.reports.decode_slice PATH FIRST_BYTE END DECODER_JSON`` writes the
pickled seconds of the lines that begin in ``[FIRST_BYTE, END)`` on stdout, for
``inoculate.reports.series``, which starts it and reads them (see ``_decode_in_parallel``).
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from inoculate.reports.series import decode_slice


def main(argv: list[str]) -> int:
    """Decode the slice named by ``argv`` and write it, pickled, on stdout."""
    path, first_byte, end, arguments = argv
    seconds = decode_slice(Path(path), int(first_byte), int(end), arguments)
    sys.stdout.buffer.write(pickle.dumps(seconds, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
