"""Subcommands of `mesh-doctor` beyond scan, tui and rules.

Each module here defines `add_arguments(parser)` and `run(options) -> int`
(an `ExitCode`), and `doctor.cli.EXTRA_COMMANDS` lists it with its name and
help. The CLI imports every listed module to build its argument parser, so
keep their top-level imports light.
"""
