"""The one exception type that entry points turn into a one-line message."""


class HwrError(Exception):
    """A problem the user can fix (missing data, bad file, bad option).

    The message is one line that says what is wrong and how to fix it; `train.py`,
    `eval.py` and the other entry points print it without a traceback.
    """
