"""Command line of the local stack: up, down, status, logs."""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table

from deploy.local.programs import LOOPBACK, BinaryMissingError
from deploy.local.settings import LocalStackSettings
from deploy.local.stack import LocalStack, StackError
from services.platform.errors import ConfigurationError
from services.platform.settings import load_settings

console = Console(highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one stack command."""
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the stack and wait until it is healthy")
    commands.add_parser("down", help="stop every process of the stack")
    commands.add_parser("status", help="show each process and its probe")
    logs = commands.add_parser("logs", help="show the end of the logs")
    logs.add_argument(
        "process", nargs="?", help="one process, e.g. mlflow or trainer-1"
    )
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("-f", "--follow", action="store_true")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(LocalStackSettings)
        stack = LocalStack(settings, report=lambda m: console.print(f"  {m}"))
        handlers = {"up": _up, "down": _down, "status": _status, "logs": _logs}
        return handlers[args.command](stack, args)
    except (ConfigurationError, StackError, BinaryMissingError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 1


def _up(stack: LocalStack, _args: argparse.Namespace) -> int:
    started = time.monotonic()
    console.print("[bold]Bringing the local stack up[/]")
    with console.status("starting…"):
        stack.up()
    console.print(f"[green]healthy[/] in {time.monotonic() - started:.0f} s\n")
    s = stack.settings
    table = Table(title="Open these", show_header=True)
    table.add_column("what")
    table.add_column("address")
    table.add_row("MLflow UI", f"http://{LOOPBACK}:{s.mlflow_port}")
    table.add_row("Prefect UI", f"http://{LOOPBACK}:{s.prefect_port}")
    table.add_row("Kafka bootstrap", f"{LOOPBACK}:{s.kafka_port}")
    table.add_row("S3 endpoint", f"http://{LOOPBACK}:{s.s3_port}")
    table.add_row("client variables", str(stack.state_dir / "stack.env"))
    table.add_row("logs", str(stack.logs_dir))
    console.print(table)
    return 0


def _down(stack: LocalStack, _args: argparse.Namespace) -> int:
    console.print("[bold]Stopping the local stack[/]")
    stack.down()
    console.print("[green]stopped[/]; no process of the stack is listening")
    return 0


def _status(stack: LocalStack, _args: argparse.Namespace) -> int:
    table = Table(show_header=True)
    for column in ("process", "component", "state", "pid", "uptime", "health"):
        table.add_column(column)
    statuses = stack.status()
    for st in statuses:
        health = (
            f"[green]up[/] {st.detail}" if st.healthy else f"[red]down[/] {st.detail}"
        )
        table.add_row(
            st.name,
            st.component,
            st.state,
            str(st.pid or "-"),
            f"{st.uptime_s} s" if st.uptime_s else "-",
            health,
        )
    console.print(table)
    return 0 if all(st.healthy for st in statuses) else 1


def _logs(stack: LocalStack, args: argparse.Namespace) -> int:
    if args.process:
        paths = [stack.log_path(args.process)]
    else:
        paths = sorted(stack.logs_dir.glob("*.log"))
    missing = [p for p in paths if not p.is_file()]
    if missing or not paths:
        console.print(f"[red]no log at[/] {missing[0] if missing else stack.logs_dir}")
        return 1
    if args.follow:
        tail = ["tail", "-n", str(args.lines), "-F", *map(str, paths)]
        os.execvp(tail[0], tail)  # noqa: S606 (replaces this process with tail; argv list)
    for path in paths:
        console.rule(path.name)
        lines = path.read_text(errors="replace").splitlines()[-args.lines :]
        console.print("\n".join(lines), markup=False)
    return 0
