"""What ``--scheduler`` accepts, and getting a ``distributed.Client`` for it.

``tcp://HOST:PORT`` / ``tls://HOST:PORT``
    a running scheduler (``dask scheduler``), workers started with ``dask worker ADDRESS`` on
    machines with hwgrader and bubblewrap installed. ``tls://`` takes its certificates from Dask's
    own configuration (``distributed.comm.tls.*``, e.g. ``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``).
``local`` / ``local:N``
    an embedded ``LocalCluster`` on this machine, N worker processes (default: one per core),
    one grading thread each, bound to loopback.

Dask's security model: anyone who can reach the scheduler can run code on every worker, and
``tcp://`` is neither encrypted nor authenticated. Plain ``tcp://`` to another machine therefore
prints a warning that points to ``tls://``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from typing import Optional, TextIO

from grader.errors import ClusterError, UsageError

#: How many times a task may be running on a worker that died before Dask gives up on it
#: (``KilledWorker``); the executor then grades that chunk's submissions one by one. The
#: embedded cluster uses 1, so a submission that keeps killing workers costs two deaths, not
#: four; set ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES`` on a scheduler you start yourself.
LOCAL_ALLOWED_FAILURES = 1
CONNECT_TIMEOUT = "20s"
_LOCAL = re.compile(r"^local(?::(\d+))?$")
_REMOTE = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[^:/\s]+):(\d+)/?$")


@dataclass(frozen=True)
class SchedulerAddress:
    """A parsed ``--scheduler`` value."""

    text: str
    protocol: str                  # "local", "tcp" or "tls"
    host: Optional[str] = None
    port: Optional[int] = None
    workers: Optional[int] = None  # local[:N]: N (None: one per core)

    @property
    def local(self) -> bool:
        return self.protocol == "local"


def parse_scheduler(text: str) -> SchedulerAddress:
    """``--scheduler`` as typed; anything else is a ``UsageError`` naming the accepted forms."""
    local = _LOCAL.match(text)
    if local:
        n = int(local.group(1)) if local.group(1) else None
        if n is not None and n < 1:
            raise UsageError(f"--scheduler {text}: a local cluster needs at least 1 worker")
        return SchedulerAddress(text, "local", workers=n)
    remote = _REMOTE.match(text)
    if remote and 0 < int(remote.group(3)) < 65536:
        return SchedulerAddress(text, remote.group(1), host=remote.group(2).strip("[]"), port=int(remote.group(3)))
    raise UsageError(f"--scheduler {text!r}: expected tcp://HOST:PORT, tls://HOST:PORT, local or local:N")


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is this machine's loopback."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def insecure_warning(address: SchedulerAddress) -> Optional[str]:
    """The warning for plain ``tcp://`` to another machine, or None."""
    if address.protocol != "tcp" or is_loopback(address.host or ""):
        return None
    return (f"hwgrader: WARNING: --scheduler {address.text} is plain tcp://: Dask traffic (submissions, "
            f"results, the hidden cases' expected outputs) is unencrypted, and anyone who can reach "
            f"the scheduler can run code on the workers (Dask's security model). Use "
            f"tls://{address.host}:{address.port} with certificates (see README, 'Grading on a Dask cluster').")


def _import_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterError("--scheduler needs Dask, which is not installed: pip install 'hwgrader[dask]'") from None
    return distributed


#: Dask settings a ``tls://`` client needs (a key may be inside the certificate file).
TLS_SETTINGS = {"distributed.comm.tls.ca-file": "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
                "distributed.comm.tls.client.cert": "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"}


def missing_tls_settings(address: SchedulerAddress) -> Optional[str]:
    """Why hwgrader cannot talk ``tls://`` to ``address`` with Dask's configuration, or None."""
    import dask

    if address.protocol != "tls":
        return None
    missing = [env for key, env in TLS_SETTINGS.items() if not dask.config.get(key, None)]
    if not missing:
        return None
    return (f"--scheduler {address.text}: tls:// needs the cluster's certificates in Dask's configuration, "
            f"and {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set (with "
            f"DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY, or in ~/.config/dask/distributed.yaml; see "
            f"README, 'Grading on a Dask cluster')")


class Connection:
    """A ``distributed.Client`` for the address (and the embedded cluster it started); close() both."""

    def __init__(self, address: SchedulerAddress, *, warn: Optional[TextIO] = None):
        distributed = _import_distributed()
        import dask

        self.address = address
        self.cluster = None
        warning = insecure_warning(address)
        if warning and warn is not None:
            print(warning, file=warn)
        missing = missing_tls_settings(address)
        if missing:
            raise ClusterError(missing)
        try:
            if address.local:
                n = address.workers or os.cpu_count() or 1
                with dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES}):
                    self.cluster = distributed.LocalCluster(
                        n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, silence_logs=50)
                self.client = distributed.Client(self.cluster, set_as_default=False)
            else:
                self.client = distributed.Client(address.text, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ClusterError(f"--scheduler {address.text}: cannot reach the Dask scheduler: "
                               f"{type(exc).__name__}: {exc}") from None

    @property
    def description(self) -> str:
        return f"Dask {'embedded cluster' if self.address.local else 'scheduler'} {self.address.text}"

    def close(self) -> None:
        client, cluster = getattr(self, "client", None), self.cluster
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
