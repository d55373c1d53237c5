"""An experiment file: loading it, its ``inoculate`` block, validation before anything runs."""
