"""``python -m coldchain``: the same as the ``coldchain`` command."""

import sys

from coldchain.cli.main import main

sys.exit(main())
