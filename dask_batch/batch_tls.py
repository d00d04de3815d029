"""The ``dask-batch-tls://`` comm backend (entry point ``distributed.comm.backends``).

distributed's TLS, with the credentials of the address from the user's state directory when
the caller brings none (a plain ``Client(scheduler_file=F)``); see ``outside``.
"""

from __future__ import annotations

import ssl
from typing import Any

from distributed.comm.tcp import TLSBackend, TLSConnector

from .outside import SCHEME, OutsideError, read_state

_PREFIX = f"{SCHEME}://"


class BatchTLSConnector(TLSConnector):
    """distributed's TLS connector, with the job's credentials when the caller has none."""

    prefix = _PREFIX

    async def connect(self, address: str, deserialize: bool = True, **connection_args: Any):
        if connection_args.get("ssl_context") is None:
            connection_args["ssl_context"] = _client_context(address)
            connection_args["require_encryption"] = True
        return await super().connect(address, deserialize=deserialize, **connection_args)


def _client_context(loc: str) -> ssl.SSLContext:
    from .security import security_from

    context = security_from(read_state(_PREFIX + loc)).get_connection_args("client")
    return context["ssl_context"]


class BatchTLSBackend(TLSBackend):
    """The ``dask-batch-tls://`` scheme: connect only; the job's servers listen on tls://."""

    _connector_class = BatchTLSConnector

    def get_listener(self, loc: str, handle_comm: Any, deserialize: bool,
                     **connection_args: Any) -> Any:
        raise OutsideError(
            f"nothing can listen on {_PREFIX}{loc}: a worker from outside the job joins with "
            "'python -m dask_batch.submit.worker --scheduler-file FILE --name NAME' "
            "(or 'dask-batch submit'), not with a plain 'dask worker'")
