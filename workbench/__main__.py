"""`python -m workbench ...` (used by `torchrun -m workbench train ...`)."""

from workbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
