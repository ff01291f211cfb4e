"""``python -m livedenoise``: the same command as ``livedenoise``."""

from livedenoise.cli import main

main()
