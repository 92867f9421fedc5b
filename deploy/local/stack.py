"""Start, probe and stop the local stack under supervisord.

The stack starts in stages, each awaited with a real probe before the next:
the object store (then its buckets), the broker (then its topics), MLflow and
Prefect (started early, they take longest), then the services (their
readiness files). A stage that fails names the component, says why and points
at its log; a program that exits while awaited fails the stage at once
instead of waiting out the timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.topics import TOPICS
from deploy.local.programs import (
    LOOPBACK,
    SERVICE_NAMES,
    Program,
    build_programs,
    client_environment,
)
from deploy.local.settings import LocalStackSettings, ObjectStoreCredentials
from services.platform.broker import ensure_topics
from services.platform.objectstore import ObjectStore, ensure_buckets, make_s3_client
from services.platform.probes import ProbeFailedError, probe_http, probe_kafka, probe_s3
from services.platform.readiness import check as check_readiness
from services.platform.settings import S3Settings

logger = logging.getLogger(__name__)

# Unix socket paths longer than this do not fit sockaddr_un on Linux.
_MAX_SOCKET_PATH = 100
_LOG_TAIL_LINES = 20
_RUNNING = "RUNNING"
_FAILED_STATES = {"FATAL", "EXITED"}
_SETTINGS_FILE = "stack.json"


class StackError(Exception):
    """The local stack could not be brought to the state asked for."""


@dataclass(frozen=True)
class ProcessStatus:
    """One process of the stack as supervisord and its probe see it."""

    name: str
    component: str
    state: str
    pid: int
    uptime_s: int
    healthy: bool
    detail: str


class LocalStack:
    """The platform as supervised local processes on loopback."""

    def __init__(
        self,
        settings: LocalStackSettings,
        credentials: ObjectStoreCredentials | None = None,
        report: Callable[[str], None] = lambda _message: None,
    ) -> None:
        self.state_dir = settings.state_dir.resolve()
        self.settings = _with_last_used(settings, self.state_dir / _SETTINGS_FILE)
        self.logs_dir = self.state_dir / "logs"
        self._report = report
        self._credentials = credentials or ObjectStoreCredentials()
        self._keys: tuple[str, str] | None = None

    # -- what clients need -------------------------------------------------

    def client_env(self) -> dict[str, str]:
        """Return the variables a client of this stack needs, keys included."""
        access_key, secret_key = self._object_store_keys()
        return {
            **client_environment(self.settings),
            "S3_ACCESS_KEY_ID": access_key,
            "S3_SECRET_ACCESS_KEY": secret_key,
        }

    def programs(self) -> list[Program]:
        """Return the stack's programs in start order."""
        s3 = self._s3_settings()
        return build_programs(
            self.settings, s3.buckets, self.settings.broker_bucket, s3.mlflow_bucket
        )

    def log_path(self, process_name: str) -> Path:
        """Return the log file of one process."""
        return self.logs_dir / f"{process_name}.log"

    # -- lifecycle -----------------------------------------------------------

    def is_running(self) -> bool:
        """Return whether this state folder's supervisord answers."""
        try:
            self._rpc().supervisor.getState()
        except (OSError, xmlrpc.client.Error):
            return False
        return True

    def up(self) -> None:
        """Start whatever is not running yet and wait until all is healthy.

        Raises:
            StackError: a port is taken, a binary is missing, or a component
                did not become healthy in time (the message names it and its log).
        """
        programs = {p.name: p for p in self.programs()}
        self._prepare_state()
        (self.state_dir / _SETTINGS_FILE).write_text(
            self.settings.model_dump_json(exclude={"state_dir"}, indent=2)
        )
        if self.is_running():
            self._report("supervisor already running; applying configuration")
            self._write_config(programs.values())
            self._apply_config()
        else:
            self._refuse_taken_ports(programs.values())
            self._write_config(programs.values())
            self._start_supervisor()

        deadline_s = self.settings.startup_timeout_s
        self._start(programs["objectstore"], programs["mlflow"], programs["prefect"])
        self._await(programs["objectstore"], self._probe_objectstore, deadline_s)
        created = ensure_buckets(self._s3_client(), self._all_buckets())
        self._report(f"buckets ready (created: {', '.join(created) or 'none'})")

        self._start(programs["broker"])
        self._await(programs["broker"], self._probe_broker, deadline_s)
        created = ensure_topics(self._bootstrap(), TOPICS)
        self._report(f"topics ready (created: {', '.join(created) or 'none'})")

        self._await(programs["mlflow"], self._probe_mlflow, deadline_s)
        self._await(programs["prefect"], self._probe_prefect, deadline_s)

        services = [p for p in programs.values() if p.name in SERVICE_NAMES]
        self._start(*services)
        for program in services:
            self._await(program, self._probe_service, deadline_s)
        self._write_client_env_file()

    def down(self, timeout_s: float = 60.0) -> None:
        """Stop every process and supervisord; require the ports to be free.

        Raises:
            StackError: a port of the stack still has a listener afterwards.
        """
        programs = self.programs()
        if self.is_running():
            rpc = self._rpc()
            for program in reversed(programs):
                self._report(f"stopping {program.component}")
                with contextlib.suppress(xmlrpc.client.Fault):
                    rpc.supervisor.stopProcessGroup(program.name, True)
            pid = self._supervisor_pid()
            rpc.supervisor.shutdown()
            self._await_exit(pid, timeout_s)
        else:
            self._report("supervisor not running")
        busy = self._listening_ports(programs, timeout_s=10.0)
        if busy:
            raise StackError(
                "after stopping, these ports still have a listener: "
                + ", ".join(f"{port} ({label})" for label, port in busy)
                + f"; see {self.logs_dir}"
            )

    def status(self) -> list[ProcessStatus]:
        """Return every process's supervisor state and probe result."""
        programs = self.programs()
        infos = self._process_infos() if self.is_running() else {}
        probes = self._probes()
        statuses = []
        for program in programs:
            for index, process in enumerate(program.process_names):
                info = infos.get(process, {})
                state = str(info.get("statename", "NOT RUNNING"))
                healthy, detail = False, str(info.get("description", "supervisor down"))
                if state == _RUNNING:
                    try:
                        probes[program.name](program, index)
                    except ProbeFailedError as exc:
                        detail = str(exc)
                    else:
                        healthy, detail = True, _address(program)
                statuses.append(
                    ProcessStatus(
                        name=process,
                        component=program.component,
                        state=state,
                        pid=int(info.get("pid", 0)),
                        uptime_s=int(info.get("now", 0)) - int(info.get("start", 0))
                        if state == _RUNNING
                        else 0,
                        healthy=healthy,
                        detail=detail,
                    )
                )
        return statuses

    def stop_process(self, process_name: str) -> None:
        """Stop one process (e.g. ``trainer-1``) gracefully; the rest run on."""
        self._rpc().supervisor.stopProcess(self._full_name(process_name), True)

    def start_process(self, process_name: str, wait: bool = True) -> None:
        """Start one process unless it runs already.

        With ``wait``, return once supervisor sees it running (not yet probed:
        :meth:`status` says when it is healthy).
        """
        try:
            self._rpc().supervisor.startProcess(self._full_name(process_name), wait)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise

    def kill_process(self, process_name: str) -> None:
        """SIGKILL one process, as a crash would; supervisor restarts it."""
        self._rpc().supervisor.signalProcess(self._full_name(process_name), "KILL")

    def _full_name(self, process_name: str) -> str:
        for program in self.programs():
            if process_name in program.process_names:
                return f"{program.name}:{process_name}"
        raise StackError(f"no process {process_name!r} in this stack")

    # -- stages ----------------------------------------------------------------

    def _start(self, *programs: Program) -> None:
        rpc = self._rpc()
        for program in programs:
            self._report(f"starting {program.component}")
            rpc.supervisor.startProcessGroup(program.name, False)

    def _await(
        self,
        program: Program,
        probe: Callable[[Program, int], None],
        timeout_s: float,
    ) -> None:
        self._report(f"waiting for {program.component}")
        started = time.monotonic()
        pending = list(enumerate(program.process_names))
        reason = "not probed yet"
        while pending:
            infos = self._process_infos()
            index, process = pending[0]
            state = str(infos.get(process, {}).get("statename", "UNKNOWN"))
            if state in _FAILED_STATES:
                raise StackError(
                    f"{program.component} ({process}) exited while starting "
                    f"(state {state}); log: {self.log_path(process)}\n"
                    + self._log_tail(process)
                )
            if state == _RUNNING:
                try:
                    probe(program, index)
                except ProbeFailedError as exc:
                    reason = str(exc)
                else:
                    pending.pop(0)
                    continue
            else:
                reason = f"supervisor state {state}"
            waited = time.monotonic() - started
            if waited > timeout_s:
                raise StackError(
                    f"{program.component} ({process}) did not become healthy in "
                    f"{timeout_s:.0f} s: {reason}; log: {self.log_path(process)}\n"
                    + self._log_tail(process)
                )
            time.sleep(0.5)
        self._report(
            f"{program.component} healthy after {time.monotonic() - started:.1f} s"
        )

    # -- probes ----------------------------------------------------------------

    def _probes(self) -> dict[str, Callable[[Program, int], None]]:
        return {
            "objectstore": self._probe_objectstore,
            "broker": self._probe_broker,
            "mlflow": self._probe_mlflow,
            "prefect": self._probe_prefect,
            **{name: self._probe_service for name in SERVICE_NAMES},
        }

    def _probe_objectstore(self, _program: Program, _index: int) -> None:
        access_key, secret_key = self._object_store_keys()
        probe_s3(self._s3_endpoint(), access_key, secret_key, "us-east-1")

    def _probe_broker(self, _program: Program, _index: int) -> None:
        probe_kafka(self._bootstrap(), timeout_s=3.0)

    def _probe_mlflow(self, _program: Program, _index: int) -> None:
        probe_http(f"http://{LOOPBACK}:{self.settings.mlflow_port}/health")

    def _probe_prefect(self, _program: Program, _index: int) -> None:
        probe_http(f"http://{LOOPBACK}:{self.settings.prefect_port}/api/health")

    def _probe_service(self, program: Program, index: int) -> None:
        path = self._readiness_file(program, index)
        reason = check_readiness(path)
        if reason is not None:
            raise ProbeFailedError(reason)

    # -- supervisord -----------------------------------------------------------

    def _socket_path(self) -> Path:
        path = self.state_dir / "supervisor.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"al-platform-{digest}.sock"  # noqa: S108 (owner-only socket, chmod 0700)

    def _rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self._socket_path()}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def _process_infos(self) -> dict[str, dict[str, Any]]:
        return {
            info["name"]: info for info in self._rpc().supervisor.getAllProcessInfo()
        }

    def _config_path(self) -> Path:
        return self.state_dir / "supervisord.conf"

    def _write_config(self, programs: Iterable[Program]) -> None:
        from deploy.local.supervisor_config import render

        text = render(
            programs,
            socket_path=self._socket_path(),
            state_dir=self.state_dir,
            logs_dir=self.logs_dir,
        )
        self._config_path().write_text(text)

    def _start_supervisor(self) -> None:
        self._report(f"starting supervisord (state in {self.state_dir})")
        supervisord = Path(sys.executable).parent / "supervisord"
        if not supervisord.is_file():
            raise StackError(
                f"supervisord not found at {supervisord}; run `make install`"
            )
        # Keys reach the programs through the environment, never the config file.
        env = {**os.environ, **self._supervisor_env()}
        subprocess.run(
            [str(supervisord), "-c", str(self._config_path())],
            env=env,
            check=True,
            cwd=self.state_dir,
        )
        deadline = time.monotonic() + 15
        while not self.is_running():
            if time.monotonic() > deadline:
                log = self.logs_dir / "supervisord.log"
                raise StackError(
                    f"supervisord did not answer on {self._socket_path()} "
                    f"within 15 s; log: {log}"
                )
            time.sleep(0.1)

    def _apply_config(self) -> None:
        rpc = self._rpc()
        added, changed, removed = rpc.supervisor.reloadConfig()[0]
        for group in (*changed, *removed):
            self._report(f"reconfiguring {group}")
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.supervisor.stopProcessGroup(group, True)
            rpc.supervisor.removeProcessGroup(group)
        for group in (*added, *changed):
            rpc.supervisor.addProcessGroup(group)

    def _supervisor_env(self) -> dict[str, str]:
        access_key, secret_key = self._object_store_keys()
        return {
            **self.client_env(),
            # SeaweedFS creates this user at start; Tansu and MLflow's artifact
            # proxy read the standard AWS names.
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }

    def _supervisor_pid(self) -> int | None:
        try:
            return int((self.state_dir / "supervisord.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _await_exit(self, pid: int | None, timeout_s: float) -> None:
        if pid is None:
            return
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                raise StackError(
                    f"supervisord (pid {pid}) still running {timeout_s:.0f} s after "
                    f"shutdown; log: {self.logs_dir / 'supervisord.log'}"
                )
            time.sleep(0.2)

    # -- files, ports, keys ---------------------------------------------------

    def _prepare_state(self) -> None:
        for folder in ("logs", "run", "objectstore", "mlflow", "prefect"):
            (self.state_dir / folder).mkdir(parents=True, exist_ok=True)

    def _object_store_keys(self) -> tuple[str, str]:
        if self._keys is not None:
            return self._keys
        given = self._credentials
        if given.access_key_id and given.secret_access_key:
            self._keys = (
                given.access_key_id.get_secret_value(),
                given.secret_access_key.get_secret_value(),
            )
            return self._keys
        path = self.state_dir / "credentials"
        if path.is_file():
            access_key, secret_key = path.read_text().split()
        else:
            access_key = "local-" + secrets.token_hex(6)
            secret_key = secrets.token_urlsafe(24)
            self.state_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(f"{access_key}\n{secret_key}\n")
        self._keys = (access_key, secret_key)
        return self._keys

    def _write_client_env_file(self) -> None:
        path = self.state_dir / "stack.env"
        path.touch(mode=0o600)
        path.write_text("".join(f"{k}={v}\n" for k, v in self.client_env().items()))

    def _s3_settings(self) -> S3Settings:
        access_key, secret_key = self._object_store_keys()
        return S3Settings(
            endpoint_url=self._s3_endpoint(),
            access_key_id=access_key,
            secret_access_key=secret_key,
        )

    def object_store(self) -> ObjectStore:
        """Return a client of this stack's object store, with its keys."""
        return ObjectStore(self._s3_client())

    def _s3_client(self) -> Any:
        access_key, secret_key = self._object_store_keys()
        return make_s3_client(self._s3_endpoint(), access_key, secret_key, "us-east-1")

    def _all_buckets(self) -> tuple[str, ...]:
        return (*self._s3_settings().buckets, self.settings.broker_bucket)

    def _s3_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.s3_port}"

    def _bootstrap(self) -> list[str]:
        return [f"{LOOPBACK}:{self.settings.kafka_port}"]

    def _readiness_file(self, program: Program, index: int) -> Path:
        template = program.environment[f"{program.name.upper()}_READINESS_FILE"]
        return Path(template.replace("%(process_num)d", str(index)))

    def _refuse_taken_ports(self, programs: Iterable[Program]) -> None:
        taken = [
            f"{port} ({program.component}, {label})"
            for program in programs
            for label, port in program.ports.items()
            if _port_taken(port)
        ]
        if taken:
            raise StackError(
                "port(s) already in use on 127.0.0.1: "
                + "; ".join(taken)
                + ". Stop what holds them, or choose other ports "
                "(STACK_KAFKA_PORT, STACK_S3_PORT, STACK_MLFLOW_PORT, "
                "STACK_PREFECT_PORT, STACK_OBJECTSTORE_INTERNAL_PORT_BASE)."
            )

    def _listening_ports(
        self, programs: Iterable[Program], timeout_s: float
    ) -> list[tuple[str, int]]:
        ports = [(label, port) for p in programs for label, port in p.ports.items()]
        deadline = time.monotonic() + timeout_s
        while True:
            busy = [(label, port) for label, port in ports if _listening(port)]
            if not busy or time.monotonic() > deadline:
                return busy
            time.sleep(0.5)

    def _log_tail(self, process: str) -> str:
        path = self.log_path(process)
        try:
            lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except FileNotFoundError:
            return f"(no log at {path})"
        return "\n".join(f"  | {line}" for line in lines)


def _with_last_used(settings: LocalStackSettings, path: Path) -> LocalStackSettings:
    """Take values not set in the environment from the last ``up`` here.

    ``status``, ``down`` and a repeated ``up`` then act on the ports and
    replica count the stack was started with, without repeating them.
    """
    if not path.is_file():
        return settings
    last = LocalStackSettings.model_validate_json(path.read_text())
    unset = (
        set(LocalStackSettings.model_fields) - settings.model_fields_set - {"state_dir"}
    )
    return settings.model_copy(update={name: getattr(last, name) for name in unset})


def _address(program: Program) -> str:
    if not program.ports:
        return "ready"
    label, port = next(iter(program.ports.items()))
    return f"{label} on {LOOPBACK}:{port}"


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
