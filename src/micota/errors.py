"""The one exception type users see: it carries a message that names what failed and the fix."""


class MicotaError(Exception):
    """A user-facing error. The CLI prints its message (no traceback) and exits non-zero.

    Messages follow one shape: where (file, line, field), what (the bad value), fix.
    """
