"""(not yet implemented) see the issue that adds `tessera demo`."""

from tessera.errors import TesseraError


def add_arguments(parser):
    pass


def run(args):
    raise TesseraError("'demo' is not implemented yet")
