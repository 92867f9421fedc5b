"""The whole platform as local processes on loopback, under supervisord.

``python -m deploy.local up|down|status|logs`` (the Makefile's ``up``, ``down``,
``status`` and ``logs`` targets) runs the same servers and services that
``docker-compose.yml`` runs as containers: a Kafka-protocol broker (Tansu), an
S3-compatible store (SeaweedFS), MLflow, Prefect, and the four services.
"""
