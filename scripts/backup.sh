#!/usr/bin/env bash
# Back up every service's database, each on its own (pg_dump, custom format), and the data
# directory (product images, posters) into one timestamped folder. README "Operations" has the
# restore runbook, including what to replay from the other services' outboxes after restoring
# one service alone.
#
#   scripts/backup.sh [DEST]                      # default backups/<UTC timestamp>
#
# Connection: the usual libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD or ~/.pgpass); a
# service's database name is <SERVICE>_PGDATABASE if set, else the service's name (compose).
# XIAOPU_BACKUP_SERVICES narrows the list; XIAOPU_DATA_DIR (if a directory) is archived too.
# With compose: docker compose exec -T postgres pg_dump ... works the same way (see README).
set -euo pipefail

SERVICES=${XIAOPU_BACKUP_SERVICES:-"catalog shop share orders payouts identity messages"}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
DEST=${1:-backups/$STAMP}
mkdir -p "$DEST"
chmod 700 "$DEST"

{
    echo "taken_at=$STAMP"
    echo "host=${PGHOST:-local socket}"
} > "$DEST/MANIFEST"

for svc in $SERVICES; do
    var="$(echo "$svc" | tr '[:lower:]' '[:upper:]')_PGDATABASE"
    db=${!var:-$svc}
    echo "backing up $svc (database $db) ..."
    # one consistent snapshot per database (pg_dump runs in one REPEATABLE READ transaction)
    pg_dump --format=custom --no-owner --no-privileges --file "$DEST/$svc.dump" "$db"
    # the newest outbox row in the dump: the point from which to replay after a lone restore
    newest=$(psql -X -At -d "$db" -c "SELECT coalesce(max(created_at)::text, '') FROM outbox" \
        2>/dev/null || true)
    echo "$svc.dump database=$db outbox_newest=${newest}" >> "$DEST/MANIFEST"
done

if [ -n "${XIAOPU_DATA_DIR:-}" ] && [ -d "$XIAOPU_DATA_DIR" ]; then
    echo "archiving the data directory $XIAOPU_DATA_DIR ..."
    tar -C "$XIAOPU_DATA_DIR" -czf "$DEST/data.tar.gz" .
    echo "data.tar.gz from=$XIAOPU_DATA_DIR" >> "$DEST/MANIFEST"
fi

echo "backup written to $DEST"
