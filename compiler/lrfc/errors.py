"""The exception types the CLI turns into one-line errors: bad input (`UserError`), failed verification."""


class UserError(Exception):
    """A mistake in the user's input (file, option, data, profile).

    The CLI prints its message as one line and exits with status 2; any other
    exception but ``VerificationError`` is a bug in lrfc and is shown with its
    traceback.
    """


def not_found(what: str, spec, expected: str = "") -> UserError:
    """``what`` (``model``, ``data``) at ``spec`` is not there; a URL is told that lrfc reads local files."""
    import re

    if re.match(r"[a-z][a-z0-9+.-]*://", str(spec), re.IGNORECASE):
        return UserError(f"{what} is a URL ({spec}); lrfc reads local files: download it (curl -LO '{spec}') and "
                         "give its path")
    return UserError(f"{what} not found: {spec}{f' ({expected})' if expected else ''}")


class VerificationError(Exception):
    """An exported artifact disagreed with its Keras model beyond the tolerance of its precision.

    Not a ``UserError``: the input was valid, the lowering went wrong. The
    message is one line with the numbers (max_abs_diff, top1_agreement,
    samples); the CLI prints it and exits with status 1.
    """


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM arrived.

    A ``BaseException`` so that no ``except Exception`` on the way swallows
    it; every ``finally`` still runs (staging folders are removed, workers
    stopped). The CLI prints one line and exits with ``128 + signum``: 130
    for SIGINT, 143 for SIGTERM.
    """

    def __init__(self, signum: int):
        import signal

        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)


def first_line(exc: BaseException, typed: bool = False, limit: int | None = None) -> str:
    """An exception's message in one short line: its first non-empty line (its type's name when it has none).

    ``typed`` puts the type in front (``LinAlgError: SVD did not converge``): what a build records of an exception
    it survived (a dropped scoring walk, a chain that would not lower). ``limit`` cuts the line to that many
    characters.
    """
    line = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:limit]
    if not line:
        return type(exc).__name__
    return f"{type(exc).__name__}: {line}" if typed else line
