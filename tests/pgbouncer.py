"""A PgBouncer in transaction mode in front of the machine's Postgres, for tests.

Debian's `pgbouncer` (installed by `.ci/run`). Where it is missing, the tests that need it
are skipped on a developer's machine and fail under CI=1, like the browser tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PgBouncer", "running_pgbouncer", "through"]

_INI = """\
[databases]
* = host=127.0.0.1 port=5432 user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 500
default_pool_size = {pool_size}
ignore_startup_parameters = extra_float_digits
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


def through(dsn: str, port: int) -> str:
    """`dsn` with PgBouncer's address instead of Postgres'."""
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"postgres@127.0.0.1:{port}"))


class PgBouncer:
    """One PgBouncer on a port of its own, which it keeps across `stop` and `start`."""

    def __init__(self, exe: str, *, pool_size: int) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        # not under pytest's private tmp: PgBouncer runs as postgres and writes its log here
        self.directory = Path(tempfile.mkdtemp(prefix="microshop-pgbouncer-"))
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(_INI.format(port=self.port, pool_size=pool_size, directory=self.directory))
        self.argv = [exe, str(ini)]
        if os.geteuid() == 0:  # it refuses to run as root
            shutil.chown(self.directory, "postgres")
            self.argv[1:1] = ["-u", "postgres"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        process = self.process = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            if process.poll() is not None or time.monotonic() > deadline:
                log = self.directory / "pgbouncer.log"
                raise RuntimeError(
                    "pgbouncer did not start: " + (log.read_text() if log.exists() else "")
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def running_pgbouncer(*, pool_size: int = 10) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode, started, until the block ends."""
    exe = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if exe is None:
        message = "needs Debian's pgbouncer (apt-get install pgbouncer; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    bouncer = PgBouncer(exe, pool_size=pool_size)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(bouncer.directory, ignore_errors=True)
