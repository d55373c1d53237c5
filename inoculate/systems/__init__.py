"""Embedded systems under test: the registry (entry-point group ``inoculate.systems``) and the
protocol a system implements. The engine never names a system; systems register themselves.
"""
