"""``python -m sessionstore``: the ``sessionstore`` command."""

import sys

from sessionstore.cli import main

sys.exit(main())
