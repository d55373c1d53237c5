"""Gamedays: a coordinated sequence of experiments with people watching, holding and noting."""
