"""The one error type the user sees: a problem with their input, shown as one line."""


class SkinartError(Exception):
    """A problem with the user's input: the CLI prints it as one line and exits with EXIT_BAD_INPUT."""


EXIT_BAD_INPUT = 2
