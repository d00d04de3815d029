"""dask-mpi's documented usage, with only the import changed.

    mpiexec -n N python mpi_tests/dask_mpi_style.py [--no-exit]
"""

import sys

from dask.distributed import Client

from dask_batch import initialize, send_close_signal

if "--no-exit" in sys.argv:
    is_client = initialize(exit=False, dashboard=False)
    if is_client:
        with Client() as client:
            print("RESULT", client.submit(lambda: 6 * 7).result(), flush=True)
        send_close_signal()
    # one write per line: the ranks share mpiexec's stdout, and print() may write in pieces
    sys.stdout.write(f"AFTER {'client' if is_client else 'not-client'}\n")
    sys.stdout.flush()
else:
    initialize(dashboard=False)
    client = Client()
    print("RESULT", client.submit(lambda: 6 * 7).result(), flush=True)
