"""The ``qlt`` command: one module per sub-command, :mod:`~qltlib.cli.main` the entry point.

:mod:`~qltlib.cli.common` holds what every sub-command shares (one-line errors, option types,
JSON output).
"""
