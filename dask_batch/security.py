"""Credentials for one job: a self-signed key and certificate, moved as PEM text.

Rank 0 makes them; they reach the other ranks by MPI message or inside the 0600 scheduler file,
never on a command line. The client rank and Jupyter kernels get them through dask config
(``distributed.comm.tls.*`` accept PEM text as well as paths).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Security


def make_credentials() -> dict[str, str]:
    """A fresh self-signed key and certificate, valid for this job's roles.

    The same certificate as distributed's ``Security.temporary()`` (``CN=dask-internal``, one
    year), with an ECDSA P-256 key instead of RSA-2048: generating it takes under a millisecond
    instead of 8-95 ms (median 35 ms; ``benchmarks/transfer.py``) on rank 0's path to a running
    scheduler; a handshake costs about the same. Valid from a day back, so a node whose clock
    lags rank 0's still accepts it.
    """
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dask-internal")])
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("dask-internal")]),
                       critical=False)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {"ca": cert_pem, "cert": cert_pem, "key": key_pem}


def security_from(creds: dict[str, str] | None) -> Security:
    """A mutual-TLS Security for every role from PEM text, or an open one if ``creds`` is None."""
    from distributed import Security

    if not creds:
        return Security()
    from .tls_contexts import JobSecurity  # one SSL context per role, not per connection

    roles = ("client", "scheduler", "worker")
    kwargs = {f"tls_{r}_{part}": creds[part] for r in roles for part in ("cert", "key")}
    return JobSecurity(require_encryption=True, tls_ca_file=creds["ca"], **kwargs)


def config_for(creds: dict[str, str] | None) -> dict:
    """dask config that makes a plain ``Client()`` use these credentials."""
    if not creds:
        return {}
    return {
        "distributed.comm.require-encryption": True,
        "distributed.comm.tls.ca-file": creds["ca"],
        "distributed.comm.tls.client.cert": creds["cert"],
        "distributed.comm.tls.client.key": creds["key"],
    }


def environ_for(creds: dict[str, str] | None) -> dict[str, str]:
    """The same as ``config_for``, as environment variables for child processes (kernels)."""
    if not creds:
        return {}
    return {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": creds["ca"],
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": creds["cert"],
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": creds["key"],
    }
