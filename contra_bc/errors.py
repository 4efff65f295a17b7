"""The one error type for problems a user can fix."""


class UserError(Exception):
    """A problem the user can fix (missing ROM, corrupt file, bad option).

    The CLI prints the message as one paragraph and exits with code 2.
    The message should say what is wrong and the exact command that fixes it.
    """
