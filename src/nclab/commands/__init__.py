"""One module per ``nclab`` subcommand (see :mod:`nclab.cli`)."""
