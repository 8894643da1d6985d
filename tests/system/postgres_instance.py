"""A private PostgreSQL server for system tests that crash and restart their database."""

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from tests.system.procs import Disposable, free_port

ROOT = Path(__file__).resolve().parents[2]
OS_USER = "postgres"

SETTINGS = """
port = {port}
listen_addresses = '{listen}'
unix_socket_directories = '{socket_dir}'
max_connections = 200
# Tests crash the server, never the machine: what was written survives without fsync.
fsync = off
"""

# Trust everyone: the server is the test's own and reachable only from this machine
# and the namespaces the test creates.
PG_HBA = """
local all all trust
host all all 0.0.0.0/0 trust
host all all ::/0 trust
"""


def bin_dir() -> Path:
    """Where initdb, pg_ctl and postgres are (Debian keeps them off PATH)."""
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if (Path(found) / "pg_ctl").exists():
            return Path(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2]))
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries found")
    return Path(candidates[-1])


def os_user_dir(prefix: str) -> Path:
    """A fresh directory under the system temp dir that the ``postgres`` OS user owns."""
    # Not pytest's tmp_path: the directories above it may not be traversable by postgres.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    account = pwd.getpwnam(OS_USER)
    os.chown(path, account.pw_uid, account.pw_gid)
    return path


def run_as_os_user(argv: list, **kwargs) -> subprocess.CompletedProcess:
    """Run ``argv`` as the ``postgres`` OS user; the servers refuse to run as root."""
    return subprocess.run(argv, user=OS_USER, capture_output=True, text=True, **kwargs)


class PostgresInstance(Disposable):
    """A PostgreSQL server of the test's own: own data directory, own free port."""

    def __init__(self, listen_addresses: tuple[str, ...] = ("127.0.0.1",)):
        self.listen_addresses = listen_addresses
        self.port = free_port()
        self.bin = bin_dir()
        self.dir = os_user_dir("pzq-pg-")
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"

    def start(self) -> None:
        """Start the server (creating its cluster the first time); return once it accepts connections."""
        if not self.data.exists():
            self._initdb()
        self._pg_ctl("start", "-l", str(self.log_path), "-t", "30")

    def stop(self, mode: str = "immediate") -> None:
        """``pg_ctl stop -m mode``; "immediate" is a crash: no checkpoint, recovery at next start."""
        self._pg_ctl("stop", "-m", mode, "-t", "30")

    def running(self) -> bool:
        return self.data.exists() and self._pg_ctl("status", check=False).returncode == 0

    def url(self, dbname: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgres://{OS_USER}@{host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def remove(self) -> None:
        """Crash the server if it runs and delete everything it had; safe to call twice."""
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def _initdb(self) -> None:
        # --no-sync: the cluster is thrown away with the test.
        self._run([self.bin / "initdb", "-D", self.data, "-U", OS_USER, "--auth=trust",
                   "--encoding=UTF8", "--locale=C", "--no-sync"])
        listen = ",".join(self.listen_addresses)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(SETTINGS.format(port=self.port, listen=listen, socket_dir=self.dir))
        (self.data / "pg_hba.conf").write_text(PG_HBA)

    def _pg_ctl(self, action: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # -w: return only once the server accepts connections, or is gone.
        return self._run([self.bin / "pg_ctl", action, "-D", self.data, "-w", *args], check=check)

    def _run(self, argv: list, check: bool = True) -> subprocess.CompletedProcess:
        # The OS user may not be allowed into the caller's working directory.
        result = run_as_os_user(argv, cwd=self.dir, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                               f"{self._log_tail()}")
        return result

    def _log_tail(self) -> str:
        try:
            return "\nserver log:\n" + self.log_path.read_text()[-3000:]
        except OSError:
            return ""


def migrated_database(instance: PostgresInstance, name: str = "pizzaq") -> str:
    """A new database on ``instance`` with pizzaq's migrations applied; its URL."""
    url = instance.create_database(name)
    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT,
                            env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{result.stdout}{result.stderr}")
    return url
