"""``python -m planner``: the ``planner`` command."""

import sys

from planner.console import main

sys.exit(main())
