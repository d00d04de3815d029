"""For code outside the job that wants it explicit: ``connect(F)`` and ``security_for(F)``.

A plain ``Client(scheduler_file=F)`` needs neither (the ``dask-batch-tls`` scheme of
``outside.py`` finds the credentials); these read them from the 0600 scheduler file itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .outside import OutsideError

if TYPE_CHECKING:
    from distributed import Client, Security


def _contact(scheduler_file: str) -> Any:
    from .rendezvous import RendezvousError, read_scheduler_file

    try:
        with open(scheduler_file):
            pass
    except (FileNotFoundError, NotADirectoryError):
        raise OutsideError(f"scheduler file {scheduler_file} does not exist: start the job "
                           f"with 'dask-batch --scheduler-file {scheduler_file}' first, or "
                           "check the path") from None
    except OSError as e:  # another user's 0600 file, or a directory it cannot enter
        raise OutsideError(f"cannot read scheduler file {scheduler_file} ({e.strerror}): only "
                           "the user who started the job can connect to it") from None
    try:
        return read_scheduler_file(scheduler_file)
    except RendezvousError as e:
        raise OutsideError(str(e)) from None


def security_for(scheduler_file: str) -> Security:
    """The ``Security`` of the job whose scheduler file is ``scheduler_file``.

    The credentials come from the 0600 scheduler file itself, so this works where the state
    directory is not shared with the job's node. An ``--insecure`` job gives an open Security.

    Example::

        from distributed import Client
        from dask_batch import security_for

        client = Client("tls://10.0.0.5:8786", security=security_for("sched.json"))
    """
    from .security import security_from

    return security_from(_contact(scheduler_file).creds)


def connect(scheduler_file: str, **client_kwargs: Any) -> Client:
    """A ``Client`` connected to the job whose scheduler file is ``scheduler_file``.

    Reads the address and credentials from the file (no state directory needed); other
    keyword arguments go to ``Client``.

    Example::

        from dask_batch import connect

        with connect("sched.json") as client:
            print(client.submit(sum, range(10)).result())
    """
    from distributed import Client

    from .security import security_from

    contact = _contact(scheduler_file)
    return Client(contact.address, security=security_from(contact.creds), **client_kwargs)
