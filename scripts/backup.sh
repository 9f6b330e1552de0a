#!/usr/bin/env bash
# Back up avatarchat: one pg_dump (custom format) per service database, from the running
# Postgres container. Roles and their passwords are not in the dump: the compose variables
# (kept by Coolify) recreate them. Avatar files live in the avatar-storage volume (docs/deploy.md).
#
#   scripts/backup.sh <postgres container> [directory]
#
# The directory defaults to ./avatarchat-backup-<UTC time>. Each dump is written to a
# .partial file first, so an interrupted backup never leaves a truncated .dump behind.
set -Eeuo pipefail

container=${1:?usage: scripts/backup.sh <postgres container> [directory]}
dir=${2:-avatarchat-backup-$(date -u +%Y%m%dT%H%M%SZ)}
docker=${DOCKER:-docker}
services=(gateway conversation ai knowledge avatar analytics)

mkdir -p "$dir"
for svc in "${services[@]}"; do
    db="avatarchat_${svc}"
    "$docker" exec "$container" pg_dump --username postgres --format custom --no-owner --no-acl \
        --no-comments "$db" > "$dir/$db.dump.partial"
    mv "$dir/$db.dump.partial" "$dir/$db.dump"
    echo "backup: $db -> $dir/$db.dump ($(du -h "$dir/$db.dump" | cut -f1))"
done
echo "backup: done: $dir"
