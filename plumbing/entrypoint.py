"""Process exit that survives the SDK's occasional abort at interpreter shutdown.

With temporalio 1.35 on Python 3.11 a process that ran a worker can abort in
PyGILState_Release after all its work is done. We flush and leave with the
real exit code before finalisation, so that abort can neither fail a good run
nor hide a bad one.
"""

from __future__ import annotations

import os
import sys


def exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
