#!/bin/sh
# Create the platform's buckets and the services' own user, limited to them.
# Idempotent: runs on every `docker compose up`. (POSIX sh: the mc image has no bash.)
set -eu
mc alias set platform http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"

resources=""
for bucket in ${BUCKETS:?BUCKETS must list bucket names}; do
  mc mb --ignore-existing "platform/$bucket"
  resources="$resources\"arn:aws:s3:::$bucket\",\"arn:aws:s3:::$bucket/*\","
done
resources="${resources%,}"

cat > /tmp/services-policy.json <<POLICY
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": [$resources]}]}
POLICY
mc admin policy create platform platform-services /tmp/services-policy.json
mc admin user add platform "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY"
if ! mc admin user info platform "$S3_ACCESS_KEY_ID" | grep -q platform-services; then
  mc admin policy attach platform platform-services --user "$S3_ACCESS_KEY_ID"
fi
