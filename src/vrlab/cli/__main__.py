"""``python -m vrlab.cli``: the same as the ``vrlab`` command."""

from vrlab.cli.main import main

main()
