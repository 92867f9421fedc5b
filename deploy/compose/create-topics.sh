#!/usr/bin/env bash
# Create every topic in $TOPICS ("name:partitions ...") if it does not exist.
# Idempotent: runs on every `docker compose up`.
set -euo pipefail
bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"
for spec in ${TOPICS:?TOPICS must list name:partitions pairs}; do
  name="${spec%%:*}"
  partitions="${spec##*:}"
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" \
    --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor 1
done
/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --list
