"""``python -m farloom_tasks.cli``: the same as the ``farloom`` command."""

import sys

from farloom_tasks.cli import main

sys.exit(main())
