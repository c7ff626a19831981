"""``python -m coldchain.dashboards [DIR]``: regenerate the committed dashboards (default ``dashboards/``)."""

import sys

from coldchain.dashboards.build import main

sys.exit(main())
