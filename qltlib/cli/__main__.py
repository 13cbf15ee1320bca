"""``python -m qltlib.cli``: the ``qlt`` command without its console script."""
import sys

from .main import main

sys.exit(main())
