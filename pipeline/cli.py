"""Running a stage as a command: logging set up, user errors as one line, exit codes."""

import logging
import os
import sys
from collections.abc import Callable

from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")

# Set to 1 to see the traceback behind a one-line error.
DEBUG_ENV = "PIPELINE_DEBUG"


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main`; on a user error log one line and exit 2 (DVC records nothing)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        main()
    except PipelineError as err:
        if os.environ.get(DEBUG_ENV) == "1":
            log.exception("error")
        log.error("error: %s", err)
        sys.exit(2)
