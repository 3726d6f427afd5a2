"""`python -m kb.cli`: the `kb` command, for environments without its console script."""

from . import main

main()
