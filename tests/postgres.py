"""A team's stack for the tests: a throwaway PostgreSQL cluster (Debian's `initdb` and
`pg_ctl`, a free port on 127.0.0.1, a temporary folder, stopped at the end) and an
`mlflow server` on it with served artifacts and MLflow's logins (basic-auth).

PostgreSQL refuses to run as root; as root (CI), the cluster runs as the `postgres` user
Debian's package creates.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

ADMIN, PASSWORD = "admin", "admin-secret"
# The MLflow server's own administrator (basic-auth), and its team: members may write the
# shared experiment and registered model; a reader may only read them.
SERVER_ADMIN = {"MLFLOW_TRACKING_USERNAME": "lead", "MLFLOW_TRACKING_PASSWORD": "lead-secret-1"}
MEMBERS = {"alice": "alice-secret-1", "bob": "bob-secret-1"}
READER = {"MLFLOW_TRACKING_USERNAME": "rita", "MLFLOW_TRACKING_PASSWORD": "rita-secret-1"}


def login(user: str) -> dict[str, str]:
    """Return the environment variables of a member's login."""
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": MEMBERS[user]}


def binaries() -> Path:
    """Return the folder of PostgreSQL's server programs (Debian keeps them off PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
    return Path(initdb).resolve().parent


def as_server_user(command: list[str]) -> list[str]:
    """Return `command` run as `postgres` when this process is root (util-linux's
    `runuser`, in /usr/sbin: not on every root's PATH)."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    return [runuser or "runuser", "-u", "postgres", "--", *command]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Cluster:
    """A running cluster: its port and its administrator's login."""

    port: int

    def url(self, database: str, user: str = ADMIN, password: str = PASSWORD) -> str:
        """Return the SQLAlchemy URL of `database` (psycopg 3, the `team` extra's driver)."""
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def create(self, database: str) -> str:
        """Create `database`; return its URL."""
        import psycopg  # noqa: PLC0415 - the `team` extra, needed by these tests only

        with psycopg.connect(self.url("postgres").replace("+psycopg", ""),
                             autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)


@contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    """Start a new cluster in a temporary folder (logins by password only); stop it and
    delete the folder at the end. Not under pytest's tmp_path: `postgres` could not enter
    root's private folders."""
    with tempfile.TemporaryDirectory(prefix="pipeline-postgres-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        with _running(folder) as cluster:
            yield cluster


@contextmanager
def _running(folder: Path) -> Iterator[Cluster]:
    """Create a cluster in `folder`, start it, and stop it when the block ends."""
    data, password_file = folder / "data", folder / "password"
    password_file.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(password_file, "postgres")
    bin_ = binaries()
    subprocess.run(as_server_user([str(bin_ / "initdb"), "-D", str(data), "-U", ADMIN,
                                   f"--pwfile={password_file}", "--auth=scram-sha-256",
                                   "--encoding=UTF8", "--no-sync"]),
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(as_server_user([str(bin_ / "pg_ctl"), "-D", str(data), "-o", options,
                                   "-l", str(folder / "server.log"), "-w", "start"]),
                   check=True, capture_output=True, timeout=120)
    try:
        yield Cluster(port)
    finally:
        subprocess.run(as_server_user([str(bin_ / "pg_ctl"), "-D", str(data), "-m", "fast",
                                       "-w", "stop"]),
                       check=False, capture_output=True, timeout=120)


@contextmanager
def team_server(cluster: Cluster, folder: Path) -> Iterator[str]:
    """Run `mlflow server --app-name basic-auth` with its runs and its logins in two
    PostgreSQL databases and artifacts served from `folder`; yield its URI."""
    from conftest import mlflow_server  # noqa: PLC0415

    config = folder / "basic_auth.ini"
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = {cluster.create('mlflow_auth')}\n"
                      f"admin_username = {SERVER_ADMIN['MLFLOW_TRACKING_USERNAME']}\n"
                      f"admin_password = {SERVER_ADMIN['MLFLOW_TRACKING_PASSWORD']}\n"
                      "authorization_function = "
                      "mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-team-secret-key-for-csrf-0123456789"}
    with mlflow_server(cluster.create("mlflow"), "--app-name", "basic-auth",
                       "--artifacts-destination", str(folder / "artifacts"), env=env) as uri:
        yield uri


def admit_team(uri: str, experiment: str, registered_model: str) -> None:
    """As the server's admin, as a team lead would: create the shared experiment and
    registered model, the members' logins with EDIT on both, and a reader's login."""
    from mlflow.server import get_app_client  # noqa: PLC0415
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    with patch.dict(os.environ, SERVER_ADMIN):  # the admin's login, for these calls only
        experiment_id = MlflowClient(uri).create_experiment(experiment)
        MlflowClient(uri).create_registered_model(registered_model)
        users = get_app_client("basic-auth", tracking_uri=uri)
        for user, password in MEMBERS.items():
            users.create_user(user, password)
            users.grant_user_permission(user, "experiment", experiment_id, "EDIT")
            users.grant_user_permission(user, "registered_model", registered_model, "EDIT")
        users.create_user(READER["MLFLOW_TRACKING_USERNAME"],
                          READER["MLFLOW_TRACKING_PASSWORD"])
