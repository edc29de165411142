#!/bin/sh
# One database and one user per service: a service can reach only its own data. The passwords
# come from the environment (docker-compose.yml: <SERVICE>_DB_PASSWORD); none is built in.
set -eu
for svc in catalog shop share orders payouts identity messages; do
    var="$(echo "$svc" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
    password="$(printenv "$var" || true)"
    if [ -z "$password" ]; then
        echo "init.sh: $var is not set" >&2
        exit 1
    fi
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
        -v user="$svc" -v password="$password" <<'SQL'
CREATE USER :"user" WITH PASSWORD :'password';
CREATE DATABASE :"user" OWNER :"user";
SQL
done
