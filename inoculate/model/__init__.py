"""The bottom layer: statuses and exit codes, run layout, the typed run summary, errors.

Imports nothing first-party; every other layer may import it.
"""
