"""``python -m clv.cli``: the ``clv`` command."""

from clv.cli import main

if __name__ == "__main__":
    main()
