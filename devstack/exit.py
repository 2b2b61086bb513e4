"""Process exit for the thin entry points."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn


def hard_exit(code: int) -> NoReturn:
    """Flush and exit without interpreter finalisation.

    Temporal's Rust core keeps native threads that can touch the GIL while CPython
    finalises (a rare abort after a failed connect); the exit code must stay the one we chose.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
