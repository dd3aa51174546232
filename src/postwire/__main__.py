"""``python -m postwire``: the command line."""

from .cli import main

raise SystemExit(main())
