"""(not yet implemented) see the issue that adds `tessera views`."""

from tessera.errors import TesseraError


def add_arguments(parser):
    pass


def run(args):
    raise TesseraError("'views' is not implemented yet")
