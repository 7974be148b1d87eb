"""``python -m nclab``: the same as the ``nclab`` console script (also what torchrun runs)."""

from nclab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
