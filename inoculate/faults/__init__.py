"""Faults and their ledger: the undo record written before a fault acts, and the one revert path.

``ledger``: the durable fault ledger. ``protocol``: inject, settle, revert. ``kinds``: fault
kind → reverter, through the ``inoculate.faults`` entry-point group. ``blast_radius``: which
targets a fault hits.
"""
