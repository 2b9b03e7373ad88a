"""Subcommands of `mesh-doctor` beyond scan, tui and rules.

Each module here defines `NAME`, `HELP`, `add_arguments(parser)` and
`run(options) -> int` (an `ExitCode`), and is listed in
`doctor.cli.EXTRA_COMMANDS`; keep their top-level imports light, because
the CLI imports every one of them to build its argument parser.
"""
