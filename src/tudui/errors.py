"""User-facing errors: the CLI prints these as one line and exits with code 2."""


class TuduiError(Exception):
    """A mistake the user can fix (bad path, bad option, wrong file). Message: what happened and what to do."""


class DataError(TuduiError):
    pass


class ConfigError(TuduiError):
    pass


class CheckpointError(TuduiError):
    pass
