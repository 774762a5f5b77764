"""One module per ``tessera`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
