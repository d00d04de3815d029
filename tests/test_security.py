"""The job's credentials: an EC key and a certificate that mutual TLS accepts."""

from __future__ import annotations

import asyncio
import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from dask_batch.security import make_credentials, security_from


def test_credentials_are_an_ec_key_and_a_backdated_certificate():
    creds = make_credentials()
    key = load_pem_private_key(creds["key"].encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(creds["cert"].encode())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    assert cert.not_valid_before_utc < now - datetime.timedelta(hours=12)  # clock skew
    assert cert.not_valid_after_utc > now + datetime.timedelta(days=300)
    assert make_credentials()["key"] != creds["key"]  # fresh per job


def test_mutual_tls_accepts_the_job_and_refuses_another_jobs_credentials():
    from distributed import Scheduler
    from distributed.comm import connect

    ours, theirs = security_from(make_credentials()), security_from(make_credentials())

    async def main() -> tuple[bool, bool]:
        async with Scheduler(protocol="tls", host="127.0.0.1", port=0, security=ours,
                             dashboard=False) as s:
            comm = await connect(s.address, timeout=5, **ours.get_connection_args("client"))
            await comm.write({"op": "identity"})
            ok = "id" in await comm.read()
            await comm.close()
            try:
                c = await connect(s.address, timeout=2, **theirs.get_connection_args("client"))
                await c.write({"op": "identity"})
                await c.read()
                refused = False
            except Exception:
                refused = True
            return ok, refused

    assert asyncio.run(main()) == (True, True)


def test_one_ssl_context_per_role_and_purpose_per_process():
    """security_from() contexts are made once (not per connection), one per role and
    purpose and job; the object pickles like distributed's Security and still connects."""
    import pickle

    creds = make_credentials()
    sec = security_from(creds)
    a = sec.get_connection_args("worker")["ssl_context"]
    assert sec.get_connection_args("worker")["ssl_context"] is a
    assert security_from(creds).get_connection_args("worker")["ssl_context"] is a
    assert sec.get_listen_args("worker")["ssl_context"] is not a  # the server's purpose
    assert security_from(make_credentials()).get_connection_args("worker")["ssl_context"] \
        is not a  # another job's credentials
    copy = pickle.loads(pickle.dumps(sec))
    assert type(copy) is type(sec) and copy.tls_worker_cert == sec.tls_worker_cert
    assert copy.get_connection_args("worker")["ssl_context"] is a
