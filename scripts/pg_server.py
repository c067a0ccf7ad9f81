"""A throwaway PostgreSQL cluster: a temp dir, 127.0.0.1 on a free port, a password login.

Usage: ``python scripts/pg_server.py`` starts one, prints its URI (the password goes in
``$PGPASSWORD``) and stops it on Ctrl-C. The tests (``tests/integration/test_postgres.py``) and
``benchmarks/postgres.py`` use :func:`throwaway_server`.

Needs the server binaries (Debian's ``postgresql``). PostgreSQL refuses to run as root: as
root, the server runs as the ``postgres`` user through ``runuser``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ServerUnavailableError(RuntimeError):
    """No server can be started here (the reason says why)."""


def server_binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (Debian's newest version first), if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if found:
        return found[0].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def throwaway_server(password: str, user: str = "clv") -> Iterator[str]:
    """Start a cluster with one user (scram password login); yield its URI (no password in
    it); stop it and delete its files on exit.

    Raises
    ------
    ServerUnavailableError
        Without server binaries, or as root without ``runuser`` or a ``postgres`` user.
    """
    bindir = server_binaries()
    if bindir is None:
        raise ServerUnavailableError("the PostgreSQL server binaries (initdb) are not installed")
    as_postgres: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="clv-pg-"))
    try:
        if os.geteuid() == 0:  # the server refuses to run as root
            if shutil.which("runuser") is None:
                raise ServerUnavailableError("as root, without runuser to start the server")
            try:
                shutil.chown(root, "postgres")
            except LookupError:
                raise ServerUnavailableError(
                    "running as root with no 'postgres' user for the server"
                ) from None
            as_postgres = ["runuser", "-u", "postgres", "--"]
        root.chmod(0o700)
        secret = root / "pw"
        secret.write_text(password + "\n")
        if as_postgres:
            shutil.chown(secret, "postgres")
        data, port = root / "data", free_port()
        subprocess.run(
            [
                *as_postgres,
                str(bindir / "initdb"),
                *("-D", str(data), "-U", user, "-E", "UTF8", "--auth=scram-sha-256"),
                *(f"--pwfile={secret}", "--no-sync"),
            ],
            check=True,
            capture_output=True,
        )
        secret.unlink()
        options = f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [
                *as_postgres,
                str(bindir / "pg_ctl"),
                *("-D", str(data), "-l", str(root / "log"), "-w", "-o", options, "start"),
            ],
            check=True,
            capture_output=True,
        )
        try:
            yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--password", default="clv-local")
    args = parser.parse_args()
    with throwaway_server(args.password) as uri:
        print(f"{uri}  (export PGPASSWORD={args.password}); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
