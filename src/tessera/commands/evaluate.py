"""(not yet implemented) see the issue that adds `tessera evaluate`."""

from tessera.errors import TesseraError


def add_arguments(parser):
    pass


def run(args):
    raise TesseraError("'evaluate' is not implemented yet")
