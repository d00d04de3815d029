"""distributed's ``Security``, each SSL context made once per process instead of per connection.

``Security.get_connection_args`` builds a new ``ssl.SSLContext`` for every connection: with the
job's PEM text it writes a temporary key and certificate, loads them and removes them again,
2 ms on an idle core and 6-9 ms on a busy node (measured), against a handshake of about 1 ms.
A worker rank makes three at start (its member link, the nanny's listener and connections),
its forked worker two more; a scheduler one per listener. An SSLContext is made to be shared
(thread-safe, usable after fork), so ``JobSecurity`` keeps one per set of TLS settings and
purpose. It pickles as ``Security`` does (the cache is the process's, not the object's).
"""

from __future__ import annotations

import ssl
from typing import Any

from distributed import Security

_CONTEXTS: dict[tuple, ssl.SSLContext] = {}


class JobSecurity(Security):
    # no __slots__ of its own: Security checks its keyword arguments against self.__slots__

    def _get_tls_context(self, tls: dict[str, Any], purpose: Any) -> ssl.SSLContext | None:
        key = (tuple(sorted(tls.items())), purpose, self.tls_min_version,
               self.tls_max_version)
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = super()._get_tls_context(tls, purpose)
            if ctx is not None:
                _CONTEXTS[key] = ctx
        return ctx
