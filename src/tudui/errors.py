"""User-facing errors: the CLI prints these as one line and exits with code 2."""


class TuduiError(Exception):
    """A mistake the user can fix (bad path, bad option, wrong file). Message: what happened and what to do."""


class DataError(TuduiError):
    pass


class ConfigError(TuduiError):
    pass


class CheckpointError(TuduiError):
    pass


def first_line(e: BaseException, limit: int = 200) -> str:
    """An exception's first non-empty line (its type's name when it has no message), at most `limit` characters:
    what a one-line error quotes of a library's exception."""
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:limit]
