"""Credentials for one job: distributed's ``Security.temporary()``, moved as PEM text.

Rank 0 makes them; they reach the other ranks by MPI message or inside the 0600 scheduler file,
never on a command line. The client rank and Jupyter kernels get them through dask config
(``distributed.comm.tls.*`` accept PEM text as well as paths).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Security


def make_credentials() -> dict[str, str]:
    """A fresh self-signed key and certificate, valid for this job's roles."""
    from distributed import Security

    sec = Security.temporary()
    return {"ca": sec.tls_ca_file, "cert": sec.tls_scheduler_cert, "key": sec.tls_scheduler_key}


def security_from(creds: dict[str, str] | None) -> Security:
    """A mutual-TLS Security for every role from PEM text, or an open one if ``creds`` is None."""
    from distributed import Security

    if not creds:
        return Security()
    roles = ("client", "scheduler", "worker")
    kwargs = {f"tls_{r}_{part}": creds[part] for r in roles for part in ("cert", "key")}
    return Security(require_encryption=True, tls_ca_file=creds["ca"], **kwargs)


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
