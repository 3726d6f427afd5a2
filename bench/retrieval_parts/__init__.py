"""The parts of bench/retrieval.py, one module each: `part_<name>(args, target, msmarco, state)`
measures and returns its figures, `print_<name>(figures)` prints them."""
