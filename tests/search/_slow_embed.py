"""`tessera embed` with a pause between each shard's array and its table, for the kill -9 test (the hook lives
here, in the tests, not in production code): ``python -m tests.search._slow_embed SECONDS embed ARGS...``."""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    import tessera.search.embed as embed
    from tessera.cli import main as cli

    pause = float(argv[0])
    write_table = embed._write_shard_table

    def slow_write_table(folder, name, rows) -> None:
        time.sleep(pause)  # the window in which a shard's array exists without its table
        write_table(folder, name, rows)

    embed._write_shard_table = slow_write_table  # _write_shard looks it up at call time
    return cli(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
