"""(not yet implemented) see the issue that adds `tessera pretrain`."""

from tessera.errors import TesseraError


def add_arguments(parser):
    pass


def run(args):
    raise TesseraError("'pretrain' is not implemented yet")
