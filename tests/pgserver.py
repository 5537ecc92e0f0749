"""A real PostgreSQL server for the tests (and the bench): initdb into a temporary folder, listening
on a Unix socket only, stopped and removed afterwards. Debian's server binaries are used
(``apt-get install postgresql``; ``$CSAT_PG_BIN`` names another folder). As root, the server runs
as the ``postgres`` user (PostgreSQL refuses to run as root)."""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile


def _bin_dir() -> str | None:
    wanted = os.environ.get("CSAT_PG_BIN")
    candidates = [wanted] if wanted else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and os.path.exists(os.path.join(folder, "pg_ctl")):
            return folder
    found = shutil.which("pg_ctl")
    return os.path.dirname(found) if found else None


class Server:
    """One PostgreSQL server; :meth:`database` makes a fresh, empty database and returns its URL."""

    def __init__(self, durable: bool = False) -> None:
        """``durable``: a commit survives a crash (as in production); by default the tests' servers
        skip the flushes for speed, so a crash may lose what was committed last."""
        self.durable = durable
        self.bin = _bin_dir()
        if self.bin is None:
            raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql, or set CSAT_PG_BIN)")
        self.folder = tempfile.mkdtemp(prefix="csat-pg-")
        self.as_user = "postgres" if os.geteuid() == 0 else None
        if self.as_user:
            shutil.chown(self.folder, self.as_user)
        self.data = os.path.join(self.folder, "data")
        self.port = 5432 + os.getpid() % 20000 + 1000 + 7 * durable
        self._names = itertools.count(1)
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8",
                  "--locale=C.UTF-8")
        self.start()

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.folder, "server.log"), "-w", "-o",
                  f"-k {self.folder} -c listen_addresses='' -p {self.port} -c max_connections=200"
                  + ("" if self.durable else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"),
                  "start")

    def crash(self) -> None:
        """Stop the server at once, as a power cut or a failover would (``start`` brings it back)."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def _run(self, tool: str, *args: str) -> None:
        command = [os.path.join(self.bin, tool), *args]  # type: ignore[arg-type]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.folder}&port={self.port}"

    def database(self) -> str:
        import psycopg
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
