"""A throwaway PostgreSQL server for tests: initdb + pg_ctl in a temp folder, on loopback.

Debian's server binaries (``/usr/lib/postgresql/*/bin``; ``apt-get install -y postgresql``,
which ``.ci/run`` does when they are missing). initdb refuses to run as root, so as root the
server runs as the ``postgres`` user (or ``nobody``) through ``runuser``. Durability is off
(fsync, synchronous_commit) and the data lives in /dev/shm when it can: the tests restart
the server, they never crash the machine.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{data}'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
"""


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, newest version first; None when absent."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One server; `database()` gives each test a fresh database's URL."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="optsweep-pg-", dir=_memory_folder()))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.prefix = ["runuser", "-u", user, "--"]
        self._count = 0

    def _run(self, *args: str) -> None:
        command = [*self.prefix, str(self.binaries / args[0]), *args[1:]]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(port=self.port, data=self.data))

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Create a new empty database; its URL."""
        import psycopg2

        self._count += 1
        name = f"t{self._count}_{os.getpid()}"
        connection = psycopg2.connect(self.url())
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        connection.close()
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _memory_folder() -> str | None:
    """/dev/shm when it has room: creating and dropping databases there costs no disk I/O."""
    try:
        return "/dev/shm" if shutil.disk_usage("/dev/shm").free > 2**30 else None
    except OSError:
        return None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole session; skipped only without its binaries."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: "
            "apt-get install -y postgresql (.ci/run does)"
        )
    pytest.importorskip("psycopg2", reason="psycopg2 missing: pip install -e '.[postgres]'")
    server = PostgresServer(binaries)
    try:
        server.init()
        server.start()
    except (subprocess.SubprocessError, OSError) as error:
        log = server.log.read_text() if server.log.exists() else ""
        server.close()
        raise RuntimeError(f"could not start PostgreSQL: {error}\n{log}") from error
    yield server
    server.close()


def wait_for(condition, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``condition()`` until true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
