"""``python -m berth``: the same entry point as the ``berth`` console script."""

import sys

from berth.cli.main import main

sys.exit(main())
