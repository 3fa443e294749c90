"""Errors a user can fix: reported as one line, without a traceback."""


class PipelineError(Exception):
    """Base for errors caused by the user's input, not by a bug."""


class ParamsError(PipelineError):
    """A value in params.yaml is missing, unknown or out of range."""


class InputError(PipelineError):
    """An input file is missing, damaged or of the wrong shape."""
