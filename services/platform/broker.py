"""Topic administration shared by the local stack and the tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from contracts.topics import TopicSpec


def ensure_topics(
    bootstrap_servers: list[str], topics: Iterable[TopicSpec], prefix: str = ""
) -> list[str]:
    """Create each topic that does not exist yet; return the names created.

    Topics are created before any service starts: the broker auto-creates a
    topic with default settings on the first request that names it.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="topic-init"
    )
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(prefix + t.name, num_partitions=t.partitions, replication_factor=1)
            for t in topics
            if prefix + t.name not in existing
        ]
        if not wanted:
            return []
        # Another init step may create one between the listing and the request.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        admin.close()
