"""``python -m gen.cli``: the ``mixpe`` command without its console script."""

import sys

from gen.cli import main

sys.exit(main())
