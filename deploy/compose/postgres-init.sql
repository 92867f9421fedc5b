-- One database per server that keeps state in PostgreSQL.
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
