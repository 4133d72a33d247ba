"""``python -m optsweep`` is the ``optsweep`` command."""

from optsweep.cli import main

main()
