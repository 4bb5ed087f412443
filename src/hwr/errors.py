"""The exceptions a command turns into a one-line message (hwr.runs.console.user_errors prints it)."""


class HwrError(Exception):
    """A problem the user can fix (missing data, bad file, bad option).

    The message is one line that says what is wrong and how to fix it; every command prints
    it as `error: <message>` without a traceback and exits with `exit_code`.
    """

    exit_code = 1


class FolderTaken(HwrError):
    """The run folder holds another run, or another process runs in it: nothing may be
    written there, not even a failure record."""


class Diverged(HwrError):
    """The training loss stopped being a finite number: the run stops at that step."""

    exit_code = 3


def root_cause(error: BaseException) -> BaseException:
    """The exception inside Hydra's InstantiationException wrappers (a constructor's HwrError)."""
    # Imported here: hwr.errors is imported by light modules (hwr.preprocess) that ship without Hydra.
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def one_line(error: BaseException) -> str:
    """A user error's own message, else `Type: first line of the message`."""
    cause = root_cause(error)
    if isinstance(cause, HwrError):
        return str(cause)
    text = f"{type(cause).__name__}: {cause}".strip()
    return text.splitlines()[0] if text else type(cause).__name__
