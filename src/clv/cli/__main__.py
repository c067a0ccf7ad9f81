"""``python -m clv.cli``: the ``clv`` command."""

from clv.cli import main

main()
