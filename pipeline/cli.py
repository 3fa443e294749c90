"""Running a stage as a command: logging, user errors as one line, signals. Exit codes: 0
done, 1 a bug (traceback), 2 a user error, 130 Ctrl-C, 143 SIGTERM.
"""

import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")

# Set to 1 to see the traceback behind a one-line error.
DEBUG_ENV = "PIPELINE_DEBUG"


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C so open MLflow runs end as KILLED."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main` and exit with a code that says how it ended."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except PipelineError as err:
        if os.environ.get(DEBUG_ENV) == "1":
            log.exception("error")
        log.error("error: %s", err)
        sys.exit(2)
    except Terminated:
        log.error("terminated (SIGTERM)")
        sys.exit(143)
    except KeyboardInterrupt:
        log.error("interrupted")
        sys.exit(130)
