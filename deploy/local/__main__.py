"""Run the local stack's command line: ``python -m deploy.local``."""

import sys

from deploy.local.cli import main

sys.exit(main())
