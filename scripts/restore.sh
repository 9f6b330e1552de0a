#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into a fresh Postgres from our image (a new,
# empty postgres-data volume): its init script has created each service's role and empty
# database, and every restored object is owned by that service's role again.
#
#   scripts/restore.sh <postgres container> <backup directory>
#
# Stop the app container first. A database that already has tables is refused, so a restore
# never mixes two states; nothing is restored unless every database is empty.
set -Eeuo pipefail

container=${1:?usage: scripts/restore.sh <postgres container> <backup directory>}
dir=${2:?usage: scripts/restore.sh <postgres container> <backup directory>}
docker=${DOCKER:-docker}
services=(gateway conversation ai knowledge avatar analytics)

for svc in "${services[@]}"; do
    db="avatarchat_${svc}"
    [[ -s "$dir/$db.dump" ]] || { echo "restore: $dir/$db.dump is missing" >&2; exit 1; }
    tables=$("$docker" exec "$container" psql --username postgres --dbname "$db" -Atc \
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    if [[ "$tables" != "0" ]]; then
        echo "restore: $db already has $tables tables; restore into a fresh Postgres (docs/deploy.md)" >&2
        exit 1
    fi
done
for svc in "${services[@]}"; do
    db="avatarchat_${svc}"
    # --role: objects are created by (and owned by) the service's own role, as the service made them
    "$docker" exec -i "$container" pg_restore --username postgres --dbname "$db" --role "$db" \
        --no-owner --no-acl --exit-on-error --single-transaction < "$dir/$db.dump"
    echo "restore: $db"
done
echo "restore: done"
