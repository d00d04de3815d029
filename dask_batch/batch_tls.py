"""The ``dask-batch-tls://`` comm backend (entry point ``distributed.comm.backends``).

distributed's TLS, with the credentials of the address from the user's state directory when
the caller brings none (a plain ``Client(scheduler_file=F)``); see ``outside``.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from distributed.comm.tcp import TLSBackend, TLSConnector

from .outside import SCHEME, OutsideError, read_state, state_file

_PREFIX = f"{SCHEME}://"


class BatchTLSConnector(TLSConnector):
    """distributed's TLS connector, with the job's credentials when the caller has none."""

    prefix = _PREFIX

    async def connect(self, address: str, deserialize: bool = True,
                      **connection_args: Any) -> Any:
        if connection_args.get("ssl_context") is None:
            connection_args["ssl_context"] = _client_context(address)
            connection_args["require_encryption"] = True
        return await super().connect(address, deserialize=deserialize, **connection_args)


# one context per credentials file as it is now: a client opens several connections, and each
# new context writes the PEM text to temporary files for OpenSSL
_contexts: dict[tuple[str, int, int], ssl.SSLContext] = {}


def _client_context(loc: str) -> ssl.SSLContext:
    from .security import security_from

    address = _PREFIX + loc
    try:
        st = os.stat(state_file(address))
        key = (loc, st.st_ino, st.st_mtime_ns)
    except OSError:
        key = None  # read_state says why
    if key in _contexts:
        return _contexts[key]
    context = security_from(read_state(address)).get_connection_args("client")["ssl_context"]
    if key is not None:
        _contexts.clear()  # an older file of this address, or of a job long gone
        _contexts[key] = context
    return context


class BatchTLSBackend(TLSBackend):
    """The ``dask-batch-tls://`` scheme: connect only; the job's servers listen on tls://."""

    _connector_class = BatchTLSConnector

    def get_listener(self, loc: str, handle_comm: Any, deserialize: bool,
                     **connection_args: Any) -> Any:
        raise OutsideError(
            f"nothing can listen on {_PREFIX}{loc}: a worker from outside the job joins with "
            "'python -m dask_batch.submit.worker --scheduler-file FILE --name NAME' "
            "(or 'dask-batch submit'), not with a plain 'dask worker'")
