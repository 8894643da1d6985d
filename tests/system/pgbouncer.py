"""PgBouncer in front of a test's database, for tests of pizzaq behind a transaction pooler."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from tests.system.postgres_instance import OS_USER, os_user_dir
from tests.system.procs import Disposable, free_port

CONFIG = """\
[databases]
{dbname} = host={upstream_host} port={upstream_port} dbname={dbname} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
; Empty: no Unix socket, so nothing is shared with a system PgBouncer.
unix_socket_dir =
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
auth_type = trust
auth_file = {dir}/userlist.txt
admin_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
ignore_startup_parameters = {ignored}
"""


def binary() -> str | None:
    """The pgbouncer executable; Debian installs it in /usr/sbin, which may not be on PATH."""
    return shutil.which("pgbouncer", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))


class PgBouncer(Disposable):
    """Debian's PgBouncer in transaction pooling mode in front of one database."""

    # Startup parameters PgBouncer 1.18 would refuse the connection over. libpq (so psycopg
    # and Django) sends none of them unless asked to; JDBC sends extra_float_digits. Ignoring
    # "options" drops it silently: its settings (e.g. -c statement_timeout=...) are not applied.
    IGNORED_STARTUP_PARAMETERS = ("extra_float_digits", "options")

    def __init__(self, upstream_host: str, upstream_port: int, dbname: str, pool_size: int = 20,
                 ignore_startup_parameters: tuple[str, ...] = IGNORED_STARTUP_PARAMETERS):
        self.upstream_host, self.upstream_port, self.dbname = upstream_host, upstream_port, dbname
        self.pool_size, self.ignore_startup_parameters = pool_size, ignore_startup_parameters
        self.port = free_port()
        self.dir: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "pgbouncer.log"

    def start(self) -> None:
        """Write its configuration and start it; return once it accepts connections."""
        executable = binary()
        if executable is None:
            raise RuntimeError("pgbouncer is not installed")
        self.dir = os_user_dir("pzq-pgbouncer-")
        config = self._write_config()
        # PgBouncer refuses to run as root. Not daemonized (-d), so the Popen is the process.
        self.process = subprocess.Popen([executable, str(config)], user=OS_USER, cwd=self.dir,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self._wait_until_ready()

    def url(self, dbname: str | None = None) -> str:
        """The pooled database's URL; ``dbname="pgbouncer"`` for the admin console."""
        return f"postgres://{OS_USER}@127.0.0.1:{self.port}/{dbname or self.dbname}"

    def remove(self) -> None:
        """Kill it and delete its files; safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _write_config(self) -> Path:
        # trust still needs the user listed in auth_file; the password is never asked for.
        (self.dir / "userlist.txt").write_text(f'"{OS_USER}" ""\n')
        config = self.dir / "pgbouncer.ini"
        config.write_text(CONFIG.format(
            dbname=self.dbname, upstream_host=self.upstream_host, upstream_port=self.upstream_port,
            user=OS_USER, port=self.port, dir=self.dir, pool_size=self.pool_size,
            ignored=",".join(self.ignore_startup_parameters),
        ))
        return config

    def _wait_until_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited ({self.process.returncode}):\n{self._log_tail()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=1) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer not ready after {timeout} s:\n{self._log_tail()}")
                time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-3000:]
        except OSError:
            return ""

    def transactions(self) -> int:
        """How many transactions it has carried to its database so far (``SHOW STATS``)."""
        # The admin console speaks the simple query protocol only: a ClientCursor uses it.
        with psycopg.connect(self.url("pgbouncer"), autocommit=True, cursor_factory=psycopg.ClientCursor) as admin:
            cursor = admin.execute("SHOW STATS")
            columns = [column.name for column in cursor.description]
            stats = [dict(zip(columns, row)) for row in cursor.fetchall()]
        return sum(row["total_xact_count"] for row in stats if row["database"] == self.dbname)
