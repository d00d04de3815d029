"""TLS vs TCP inside one dask_batch job: connection set-up and 100 MB transfers.

    mpiexec -n 4 python benchmarks/jobs/transfer_job.py [SIZE_MB] [REPEATS]

The client rank prints ``REPORT {json}``: when every worker had joined, one new connection to
the scheduler (connect + handshake), a worker-to-worker transfer of SIZE_MB random bytes, a
scatter from the client to a worker and a gather back (medians of REPEATS), and, under TLS,
what the handshake negotiated and that the scheduler refuses a peer without this job's
certificate.

``BENCH_RSA=1`` makes rank 0 use distributed's ``Security.temporary()`` (RSA-2048) instead of
dask_batch's EC credentials, to compare the two.
"""

import asyncio
import json
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time

from dask.distributed import Client, wait

from dask_batch import BatchRunner

if os.environ.get("BENCH_RSA") == "1":
    import dask_batch.security

    def _rsa_credentials() -> dict:
        from distributed import Security

        sec = Security.temporary()
        return {"ca": sec.tls_ca_file, "cert": sec.tls_scheduler_cert,
                "key": sec.tls_scheduler_key}

    dask_batch.security.make_credentials = _rsa_credentials

size = int(float(sys.argv[1] if len(sys.argv) > 1 else 100) * 2**20)
repeats = int(sys.argv[2] if len(sys.argv) > 2 else 3)


def connect_times(address: str, args: dict, n: int) -> list[float]:
    from distributed.comm import connect

    async def go() -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            comm = await connect(address, **args)
            out.append(time.perf_counter() - t)
            await comm.close()
        return out

    return asyncio.run(go())


def raw_tls(address: str, ca: str, cert: str | None = None, key: str | None = None) -> str:
    """Handshake with the scheduler using only ``ca`` (and an optional client cert)."""
    ctx = ssl.create_default_context(cadata=ca)
    ctx.check_hostname = False
    if cert:
        with tempfile.TemporaryDirectory() as d:
            with open(f"{d}/c", "w") as f:
                f.write(cert)
            with open(f"{d}/k", "w") as f:
                f.write(key or "")
            ctx.load_cert_chain(f"{d}/c", f"{d}/k")
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        try:
            with ctx.wrap_socket(sock) as s:
                s.settimeout(5)
                version = s.version()
                s.recv(1)  # TLS 1.3 reports a refused client certificate here
                return f"accepted ({version})"
        except (ssl.SSLError, OSError) as e:
            return f"refused ({getattr(e, 'reason', None) or type(e).__name__})"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


with BatchRunner() as runner:
    with Client(runner) as client:
        client.wait_for_workers(runner.n_workers, timeout=120)
        ready_at = time.time()
        a, b = sorted(client.scheduler_info()["workers"])[:2]
        args = runner.security.get_connection_args("client")
        connect_s = connect_times(runner.scheduler_address, args, 30)
        w2w, scatter, gather = [], [], []
        for _ in range(repeats):
            x = client.submit(os.urandom, size, workers=[a], pure=False)
            wait(x)
            w2w.append(timed(lambda x=x: client.submit(len, x, workers=[b], pure=False).result()))
            del x
            data = os.urandom(size)
            t = time.perf_counter()
            y = client.scatter(data, workers=[a], hash=False)
            scatter.append(time.perf_counter() - t)
            gather.append(timed(lambda y=y: client.gather(y)))
            del y, data
        tiny = statistics.median(
            timed(lambda: client.submit(len, b"", workers=[b], pure=False).result())
            for _ in range(5))
        report = {
            "protocol": runner.scheduler_address.split("://")[0], "ready_at": ready_at,
            "connect_ms": statistics.median(connect_s) * 1e3,
            "w2w_s": statistics.median(w2w), "scatter_s": statistics.median(scatter),
            "gather_s": statistics.median(gather), "tiny_task_s": tiny,
            "size_mib": size / 2**20,
        }
        if runner.scheduler_address.startswith("tls://"):
            from cryptography import x509

            sec = runner.security
            cert = x509.load_pem_x509_certificate(sec.tls_client_cert.encode())
            other = __import__("distributed").Security.temporary()
            report.update(
                key=type(cert.public_key()).__name__.lstrip("_"),
                own_cert=raw_tls(runner.scheduler_address, sec.tls_ca_file,
                                 sec.tls_client_cert, sec.tls_client_key),
                no_client_cert=raw_tls(runner.scheduler_address, sec.tls_ca_file),
                foreign_cert=raw_tls(runner.scheduler_address, sec.tls_ca_file,
                                     other.tls_client_cert, other.tls_client_key),
            )
        print("REPORT " + json.dumps(report), flush=True)
        print(f"DONE {time.time():.6f}", flush=True)
