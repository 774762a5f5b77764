"""(not yet implemented) see the issue that adds `tessera ingest`."""

from tessera.errors import TesseraError


def add_arguments(parser):
    pass


def run(args):
    raise TesseraError("'ingest' is not implemented yet")
