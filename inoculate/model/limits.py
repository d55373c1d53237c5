"""How much inoculate reads from a file someone else wrote: every bound on input, once.

An experiment, a var file or a journal is input: a mistake or a hostile file must end in a
clear error, not in a long wait, gigabytes of memory, a ``RecursionError`` or megabytes of
error text. Each bound is far above what a real file needs (the demo experiments are under
4 KiB, hold about 150 values and nest 7 levels deep). README's "Input limits" lists them.
"""

from __future__ import annotations

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_INPUT_DEPTH",
    "MAX_INPUT_VALUES",
    "MAX_LISTED_PROBLEMS",
    "MAX_PROBLEM_CHARS",
    "MAX_RUN_FILE_BYTES",
    "MAX_RUN_FILE_DEPTH",
    "human_bytes",
]

# Experiments, var files and locustfiles.
MAX_INPUT_BYTES = 1024 * 1024
# Levels of mappings and lists inside one another.
MAX_INPUT_DEPTH = 100
# Values (scalars, mappings and lists) counted with every YAML alias expanded: an alias
# "bomb" of eight short lines expands to tens of millions of values.
MAX_INPUT_VALUES = 100_000

# Files of a run that reports read (journal.json, summary.json, inoculate.json, a report
# JSON given to `gate --baseline`): written by a run, but also handed in by users. A
# journal wraps the experiment and the activities' outputs, hence the deeper nesting.
MAX_RUN_FILE_BYTES = 64 * 1024 * 1024
MAX_RUN_FILE_DEPTH = 200

# Error output: problems listed per file, and characters per problem.
MAX_LISTED_PROBLEMS = 20
MAX_PROBLEM_CHARS = 300


def human_bytes(count: int) -> str:
    """``1048576`` → ``"1 MiB"``; the limits above as README writes them."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} bytes"
