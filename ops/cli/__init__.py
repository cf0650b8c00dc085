"""The ``objstore`` command (``python -m ops.cli``), the one place that reaches every part
(importing a subcommand's modules only when it runs).

Modules: ``main`` (the parser and dispatch), ``services`` (``up`` and the three service
subcommands, whose flags each service declares), ``status``, ``keys`` and
``metadata_admin`` (the admin commands), ``cluster`` (how an admin command finds the
cluster), ``output`` (tables, ``--json``, errors and exit codes).
"""
from ops.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
