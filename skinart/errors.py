"""The errors the user sees, each as one line, and the exit codes (README: exit codes): 2 for a bad input,
130 for an interrupt, 1 only for a bug (a traceback)."""

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class SkinartError(Exception):
    """A problem with the user's input: the CLI prints it as one line and exits with `exit_code`."""

    exit_code = EXIT_BAD_INPUT


class Interrupted(SkinartError):
    """Ctrl-C: nothing half-written is left, and the line says how to resume."""

    exit_code = EXIT_INTERRUPTED
