"""``python -m crampstats.power run|summarize ...`` (same as ``crampstats power ...``)."""

import sys

from crampstats.power.cli import main

sys.exit(main())
