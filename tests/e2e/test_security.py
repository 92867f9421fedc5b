"""What the running local stack exposes, and where its secrets do not go.

Run after the flows of the session, so the logs and MLflow hold real runs:
every socket a stack process listens on is bound to loopback, and the
object-store secret appears in no log file and no MLflow param or tag.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from deploy.local.stack import LocalStack

_LISTEN = "0A"


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The parent pid is the 2nd field after the ")" closing the name.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _process_tree(roots: set[int]) -> set[int]:
    children = _children()
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        folder = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in folder.iterdir()]
        except OSError:
            continue  # the process ended meanwhile
        inodes.update(link[8:-1] for link in links if link.startswith("socket:["))
    return inodes


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp* print each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _listeners(inodes: set[str]) -> list[tuple[str, int]]:
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and inode in inodes:
                host, port = local.split(":")
                found.append((str(_address(host)), int(port, 16)))
    return found


def test_every_socket_the_stack_listens_on_is_bound_to_loopback(
    local_stack: LocalStack,
) -> None:
    roots = {status.pid for status in local_stack.status() if status.pid}
    listeners = _listeners(_socket_inodes(_process_tree(roots)))

    assert len(listeners) >= 4, f"too few listeners found: {listeners}"
    exposed = [
        (host, port)
        for host, port in listeners
        if not ipaddress.ip_address(host).is_loopback
    ]
    assert exposed == [], f"listening beyond loopback: {exposed}"


def test_the_object_store_secret_is_in_no_log_and_no_mlflow_run(
    local_stack: LocalStack,
) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    env = local_stack.client_env()
    secret = env["S3_SECRET_ACCESS_KEY"]
    logs = sorted(local_stack.logs_dir.glob("*"))
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, run_view_type=ViewType.ALL)

    assert logs and runs, "nothing to inspect: run the flows first"
    leaking_logs = [path.name for path in logs if secret in path.read_text("latin-1")]
    leaking_runs = [
        run.info.run_id
        for run in runs
        if any(secret in str(value) for value in run.data.params.values())
        or any(secret in str(value) for value in run.data.tags.values())
    ]
    assert leaking_logs == []
    assert leaking_runs == []
