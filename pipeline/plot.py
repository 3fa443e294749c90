"""Stage `plot`: the seed's three figures (pipeline.figures), as PNG files logged to the run.

Starts the tracking agent before importing matplotlib, so that when the agent is not
running yet (a plot-only edit long after the last stage) its start-up overlaps the
drawing. Imports no TensorFlow.
"""

import logging

from pipeline import paths, tracking
from pipeline.cli import run_stage
from pipeline.params import load_params

log = logging.getLogger(__name__)


def main() -> None:
    """Draw the figures into data/plots/ and log them to the run."""
    params = load_params()
    run_id = tracking.recorded_run_id()
    link = tracking.start_agent()
    from pipeline import figures  # noqa: PLC0415 - matplotlib loads while the agent starts

    drawn = figures.draw(figures.read_inputs(), params.plot.start_points)
    with tracking.resumed_run(run_id, link) as run:
        run.log_params(params.flat(paths.STAGES["plot"].params))
        for path, figure in drawn.items():
            figures.save_figure(figure, path, params.plot.dpi)
            run.log_file(path, "plots")
    log.info("wrote %s", ", ".join(map(str, drawn)))


if __name__ == "__main__":
    run_stage(main)
