"""A client script for `dask-batch run`: the dashboard's code loads at its first visit.

    mpiexec -n 3 dask-batch run mpi_tests/dashboard_visit.py

Prints whether the scheduler had imported bokeh before and after the first visit, and what the
visit (redirects followed, as a browser does) and a second one served.
"""

import json
import sys
import urllib.request

from dask.distributed import Client


def bokeh_loaded() -> bool:
    return "bokeh" in sys.modules


def visit(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return {"status": r.status, "url": r.url, "bokeh_page": "bokeh" in r.read().decode()}


client = Client()
url = client.dashboard_link
before = client.run_on_scheduler(bokeh_loaded)
first = visit(url)
after = client.run_on_scheduler(bokeh_loaded)
second = visit(url.rsplit("/", 1)[0] + "/workers")
print(json.dumps({"url": url, "before": before, "after": after, "first": first,
                  "second": second}), flush=True)
client.close()
