"""`tessera ingest` with every journal append slowed down, for the kill tests (the hook lives here, in the tests,
not in production code): ``python -m tests.corpus._slow_ingest SECONDS INGEST-ARGS...`` sleeps SECONDS/2 before
and after each record is appended, so a test can reliably kill the job between an input's shards and its record.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    import tessera.corpus.ingest as ingest
    from tessera.cli import main as cli

    pause = float(argv[0]) / 2
    append = ingest.append_journal

    def slow_append(store, record) -> None:
        time.sleep(pause)
        append(store, record)
        time.sleep(pause)

    if pause > 0:
        ingest.append_journal = slow_append  # run_ingest looks the function up at call time
    return cli(["ingest", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
