"""One run of an experiment: the session the control drives, its journal, interrupts and timers."""
