"""``python -m mmoe``: the ``mmoe`` command (what ``torchrun -m mmoe train ...`` runs)."""

from mmoe.cli import main

if __name__ == "__main__":
    main()
