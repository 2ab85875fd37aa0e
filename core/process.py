"""Process exit for the long-running commands (worker, dealflow)."""

import logging
import os
import sys


def exit_now(code: int) -> None:
    """Leave without interpreter finalization once everything has stopped: the Temporal core runtime's
    threads were seen to abort the process there (PyGILState_Release), turning a clean stop into SIGABRT."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
