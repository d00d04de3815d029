"""The floor of TLS on this machine: 100 MiB through plain Python sockets, no Dask.

    .venv/bin/python benchmarks/tls_floor.py --reps 5 --out benchmarks/results/tls-floor.csv

Two processes, a blocking socket pair over 127.0.0.1: ``tcp`` (plain), ``tls`` (TLS 1.3 with
dask_batch's job credentials, the context distributed builds from them) and ``tls-read-ahead``
(the same with OpenSSL's read-ahead and a 256 KiB read buffer, set through ctypes: Python's
ssl module does not expose them). The sender ``sendall``s, the receiver ``recv_into``s the
whole buffer and answers with how many calls it took (TLS: one per 16 KiB record). Also:
``openssl speed`` of the negotiated cipher, the crypto alone. What remains between the crypto
and the ``tls`` row is OpenSSL's record layer and its system calls; what distributed's TLS comm
adds on top of ``tls`` is ``transfer.py``'s ``w2w_s`` minus this.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

MODES = {"tcp": None, "tls": 0, "tls-read-ahead": 2**18}


def read_ahead(ctx, buffer: int) -> None:
    """OpenSSL's SSL_CTX read-ahead (fewer recv calls per record) via ctypes; checked against
    the context's options so that a different CPython layout is an error, not a crash."""
    path = next(line.split()[-1] for line in open("/proc/self/maps") if "libssl" in line)
    lib = ctypes.CDLL(path)
    lib.SSL_CTX_ctrl.restype, lib.SSL_CTX_get_options.restype = ctypes.c_long, ctypes.c_uint64
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_set_default_read_buffer_len.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    ptr = ctypes.c_void_p.from_address(id(ctx) + 2 * ctypes.sizeof(ctypes.c_void_p)).value
    if not ptr or lib.SSL_CTX_get_options(ptr) != int(ctx.options):
        raise SystemExit("tls-read-ahead: this CPython's SSLContext layout is not the known one")
    lib.SSL_CTX_ctrl(ptr, 41, 1, None)  # SSL_CTRL_SET_READ_AHEAD
    lib.SSL_CTX_set_default_read_buffer_len(ptr, buffer)


def contexts(creds: dict, buffer: int | None):
    from dask_batch.security import security_from

    sec = security_from(creds)
    server = sec.get_listen_args("scheduler")["ssl_context"]
    client = sec.get_connection_args("worker")["ssl_context"]
    if buffer:
        read_ahead(server, buffer)
    return server, client


def receiver(creds: dict, buffer: int | None, nbytes: int, reps: int, port: mp.Queue) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port.put(listener.getsockname()[1])
    conn, _ = listener.accept()
    if buffer is not None:
        conn = contexts(creds, buffer)[0].wrap_socket(conn, server_side=True)
    view = memoryview(bytearray(nbytes))
    for _ in range(reps):
        got = calls = 0
        while got < nbytes:
            got += conn.recv_into(view[got:], nbytes - got)
            calls += 1
        conn.sendall(str(calls).encode().ljust(16))


def one_mode(mode: str, creds: dict, nbytes: int, reps: int) -> dict:
    buffer = MODES[mode]
    port: mp.Queue = mp.Queue()
    proc = mp.Process(target=receiver, args=(creds, buffer, nbytes, reps, port))
    proc.start()
    try:
        sock = socket.create_connection(("127.0.0.1", port.get(timeout=30)))
        if buffer is not None:
            sock = contexts(creds, None)[1].wrap_socket(sock)
        data, times, calls = os.urandom(nbytes), [], b""
        for _ in range(reps):
            t = time.perf_counter()
            sock.sendall(data)
            calls = sock.recv(16)
            times.append(time.perf_counter() - t)
        cipher = sock.cipher()[0] if buffer is not None else ""
        sock.close()
    finally:
        proc.join(30)
        h.kill_pids([proc.pid] if proc.is_alive() else [])
    best, med = min(times), statistics.median(times)
    return {"mode": mode, "cipher": cipher, "median_s": round(med, 4), "min_s": round(best, 4),
            "mib_per_s": round(nbytes / 2**20 / med), "recv_calls": int(calls.strip() or 0)}


def crypto_speed(cipher: str) -> dict:
    name = {"TLS_AES_256_GCM_SHA384": "aes-256-gcm", "TLS_AES_128_GCM_SHA256": "aes-128-gcm",
            "TLS_CHACHA20_POLY1305_SHA256": "chacha20-poly1305"}.get(cipher)
    if not name:
        return {}
    out = subprocess.run(["openssl", "speed", "-evp", name, "-seconds", "2", "-bytes", "16384"],
                         capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"([\d.]+)k\s*$", out.strip())
    return {"mode": f"openssl speed {name} (16 KiB)", "cipher": cipher,
            "mib_per_s": round(float(m.group(1)) * 1000 / 2**20)} if m else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size-mb", type=float, default=100)
    ap.add_argument("--out", default="benchmarks/results/tls-floor.csv")
    a = ap.parse_args()
    from dask_batch.security import make_credentials

    creds, nbytes = make_credentials(), int(a.size_mb * 2**20)
    rows = [one_mode(mode, creds, nbytes, a.reps) for mode in MODES]
    rows.append(crypto_speed(rows[1]["cipher"]))
    rows = [r for r in rows if r]
    h.write_csv(a.out, rows)
    print(h.table(rows, ["mode", "cipher", "median_s", "min_s", "mib_per_s", "recv_calls"]))


if __name__ == "__main__":
    main()
