"""What the command line runs: one experiment (``run``) or a suite that gates CI (``gate``)."""
