"""(not yet implemented) see the issue that adds `tessera simulate`."""

from tessera.errors import TesseraError


def add_arguments(parser):
    pass


def run(args):
    raise TesseraError("'simulate' is not implemented yet")
