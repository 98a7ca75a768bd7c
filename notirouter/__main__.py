"""``python -m notirouter``: the same as the ``notirouter`` command."""

from notirouter.cli import main

raise SystemExit(main())
