"""``python -m vrlab.platform.fibsync CONFIG``: the agent as a process of its own (this is what
``daemon.spawn`` runs)."""

import sys

from vrlab.platform.fibsync.daemon import main

if __name__ == "__main__":
    sys.exit(main())
