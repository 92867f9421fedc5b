"""Render the supervisord configuration of the local stack.

No program starts on its own (``autostart=false``): the stack starts them in
stages and probes each stage. Every program runs in its own process group,
which supervisord stops and kills as a whole, so servers that fork workers
(MLflow, Prefect) leave no orphan holding a port.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path

from deploy.local.programs import Program

_LOG_MAX_BYTES = "20MB"


def render(
    programs: Iterable[Program], socket_path: Path, state_dir: Path, logs_dir: Path
) -> str:
    """Return the text of ``supervisord.conf`` for ``programs``."""
    sections = [
        _section("unix_http_server", {"file": str(socket_path), "chmod": "0700"}),
        _section(
            "supervisord",
            {
                "logfile": str(logs_dir / "supervisord.log"),
                "pidfile": str(state_dir / "supervisord.pid"),
                "childlogdir": str(logs_dir),
                "directory": str(state_dir),
                "identifier": "al-platform",
                "nodaemon": "false",
            },
        ),
        _section(
            "rpcinterface:supervisor",
            {
                "supervisor.rpcinterface_factory": (
                    "supervisor.rpcinterface:make_main_rpcinterface"
                )
            },
        ),
        _section("supervisorctl", {"serverurl": f"unix://{socket_path}"}),
    ]
    sections.extend(_program_section(p, logs_dir) for p in programs)
    return "\n".join(sections)


def _program_section(program: Program, logs_dir: Path) -> str:
    replicated = program.replicas > 1
    log_name = f"{program.name}-%(process_num)d" if replicated else program.name
    options = {
        "command": _escape(shlex.join(program.command)),
        "process_name": "%(program_name)s-%(process_num)d"
        if replicated
        else "%(program_name)s",
        "numprocs": str(program.replicas),
        "autostart": "false",
        "autorestart": "unexpected",
        "startsecs": "1",
        "startretries": "3",
        "stopsignal": program.stop_signal,
        "stopwaitsecs": str(program.stop_wait_s),
        "stopasgroup": "true",
        "killasgroup": "true",
        "redirect_stderr": "true",
        "stdout_logfile": str(logs_dir / f"{log_name}.log"),
        "stdout_logfile_maxbytes": _LOG_MAX_BYTES,
        "stdout_logfile_backups": "2",
    }
    if program.environment:
        options["environment"] = ",".join(
            f'{key}="{value}"' for key, value in program.environment.items()
        )
    return _section(f"program:{program.name}", options)


def _escape(text: str) -> str:
    # supervisord expands %(name)s in commands; a literal percent must be doubled.
    return text.replace("%", "%%")


def _section(name: str, options: dict[str, str]) -> str:
    body = "\n".join(f"{key} = {value}" for key, value in options.items())
    return f"[{name}]\n{body}\n"
