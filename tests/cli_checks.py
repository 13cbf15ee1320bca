"""Checks shared by the CLI tests: an error is one line on stderr, exit status 2, no stdout; and
how a test starts a command that it will interrupt."""
import signal


def assert_one_line_error(proc, *words):
    """Assert that the finished ``subprocess`` ``proc`` failed as the CLI promises; return the line.

    Exit status 2, nothing on stdout, exactly one line on stderr (no traceback) containing
    every one of ``words``.
    """
    assert proc.returncode == 2, (proc.stdout[:200], proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def sigint_as_at_a_terminal():
    """``preexec_fn`` for a command a test interrupts with SIGINT: the default disposition, as a
    command started at a terminal has it. A shell that runs the test suite in the background
    (``cmd &`` without job control) starts it with SIGINT ignored, the children inherit that, and
    Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
