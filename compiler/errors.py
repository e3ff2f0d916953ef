"""The one exception type that means "the user gave us something wrong"."""


class UserError(Exception):
    """A mistake in the user's input (file, option, data, profile).

    The CLI prints its message as one line and exits with status 2; any other
    exception is a bug in lrfc and is shown with its traceback.
    """
