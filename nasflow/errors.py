"""The one exception family users see: stages print its message as one line and exit non-zero."""


class NasflowError(Exception):
    """A problem with the user's input (not a bug): printed as one line, exit status 2."""


class ArchError(NasflowError, ValueError):
    """A malformed or invalid architecture string / genotype."""


class ParamsError(NasflowError, ValueError):
    """An unknown key or a bad value in params.yaml or on the command line."""


class DataError(NasflowError):
    """A missing or corrupt dataset file."""


class CheckpointError(NasflowError):
    """A missing or corrupt checkpoint or artifact."""
