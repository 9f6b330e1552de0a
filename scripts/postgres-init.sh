#!/usr/bin/env bash
# avatarchat: one role and one database per service, in one PostgreSQL.
#
# For the pgvector/pgvector (official postgres) image: mounted into
# /docker-entrypoint-initdb.d/, it runs once, when the data directory is empty, as the
# superuser $POSTGRES_USER over the local socket. It can also be run by hand against an
# existing server (PG* env vars / POSTGRES_USER), because every step is skip-if-exists.
#
# For each service in: gateway conversation ai knowledge avatar analytics
#   - role      avatarchat_<svc>  LOGIN, password from <SVC>_DB_PASSWORD (e.g. GATEWAY_DB_PASSWORD)
#   - database  avatarchat_<svc>  owned by that role; REVOKE ALL ... FROM PUBLIC, so no other
#               service's role can connect to it
# and, as superuser, CREATE EXTENSION vector in avatarchat_knowledge.
#
# Passwords never become part of SQL text built by the shell and never appear on a command
# line: psql reads them from the environment (\getenv, psql >= 15) into a psql variable
# and quotes them itself (:'pw' / format('%L')).
#
# The postgres entrypoint executes this file when it is executable and sources it
# otherwise; everything runs in a subshell so that neither our shell options nor an
# `exit` leak into the entrypoint (a failure still fails the init).

(
    set -Eeuo pipefail

    services=(gateway conversation ai knowledge avatar analytics)
    superuser="${POSTGRES_USER:-postgres}"
    maintenance_db="${POSTGRES_DB:-$superuser}"

    psql_super() {
        psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$superuser" "$@"
    }

    # Check every password first, so a missing one creates nothing at all.
    for svc in "${services[@]}"; do
        pw_var="${svc^^}_DB_PASSWORD"
        if [[ -z "${!pw_var:-}" ]]; then
            echo "postgres-init: ${pw_var} is not set or empty" >&2
            exit 1
        fi
    done

    for svc in "${services[@]}"; do
        pw_var="${svc^^}_DB_PASSWORD"
        echo "postgres-init: role and database avatarchat_${svc}"
        psql_super --dbname "$maintenance_db" \
            -v role="avatarchat_${svc}" \
            -v db="avatarchat_${svc}" \
            -v pw_var="$pw_var" <<'SQL'
\getenv pw :pw_var
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'pw')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'role')
\gexec
\unset pw
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = :'db')
\gexec
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
    done

    echo "postgres-init: extension vector in avatarchat_knowledge"
    psql_super --dbname avatarchat_knowledge <<'SQL'
CREATE EXTENSION IF NOT EXISTS vector;
SQL
)
