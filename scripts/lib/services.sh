# shellcheck shell=bash
# PostgreSQL with production durability and Redis, private to one script run, on loopback
# ports below the ephemeral range: sourced by scripts/bench and scripts/chaos.
#
# The sourcing script defines die() and note(), may set WORK_PREFIX (the work directory's
# name prefix) and WORK_DISK=real-disk (refuse a tmpfs), and stops what was started on exit
# with stop_redis and stop_postgres. State, for the sourcing script to read:
#   WORK                  the work directory (make_work_dir, called by the start functions)
#   PG_BIN PGDATA PG_PORT PG_STARTED
#   REDIS_PID REDIS_PORT

WORK=${WORK:-}
PG_BIN=""
PGDATA=""
PG_PORT=""
PG_STARTED=0
REDIS_PID=""
REDIS_PORT=""

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A loopback port nothing listens on, below the ephemeral range (so the bench's own
# outgoing connections never compete with it, and a server restarts on the same port).
free_port() {
    local p _i
    for _i in $(seq 1 500); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
            ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    die "no free loopback port found"
}

# make_work_dir PREFIX [real-disk]: creates WORK (once). With "real-disk", refuses a
# tmpfs, where fsync costs nothing.
make_work_dir() {
    [ -n "$WORK" ] && return 0
    WORK=$(mktemp -d -t "$1.XXXXXX")
    chmod 0755 "$WORK"
    local fs
    fs=$(stat -f -c %T "$WORK")
    if [ "${2:-}" = real-disk ]; then
        case "$fs" in
            tmpfs | ramfs)
                die "$WORK is on $fs, where fsync costs nothing; set TMPDIR to a directory on a real disk"
                ;;
        esac
    fi
}

start_postgres() {
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || die "no PostgreSQL under /usr/lib/postgresql/*/bin"
    make_work_dir "${WORK_PREFIX:-cloak}" "${WORK_DISK:-}"
    mkdir -p "$WORK/pg"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to run PostgreSQL"
        chown postgres: "$WORK/pg"
    fi
    as_postgres test -w "$WORK/pg" || die "the postgres user cannot write $WORK/pg (set TMPDIR to a directory it can reach)"
    PGDATA=$WORK/pg/data
    PG_PORT=$(free_port)
    note "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') from $PG_BIN, data in $PGDATA, port $PG_PORT"
    as_postgres "$PG_BIN/initdb" -D "$PGDATA" -U cloak -A trust -E UTF8 --no-locale >"$WORK/pg/initdb.log" 2>&1 ||
        { cat "$WORK/pg/initdb.log" >&2; die "initdb failed"; }
    as_postgres tee -a "$PGDATA/postgresql.conf" >/dev/null <<EOC

# scripts/lib/services.sh: production durability, loopback only
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK/pg'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 400
EOC
    PG_STARTED=1
    as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg/postgres.log" -w -t 60 start >/dev/null ||
        { tail -n 30 "$WORK/pg/postgres.log" >&2 || true; die "PostgreSQL did not start"; }
    local s
    s=$(psql_q -c "SELECT current_setting('fsync') || ' ' || current_setting('synchronous_commit') || ' ' || current_setting('full_page_writes') || ' ' || current_setting('max_connections')")
    [ "$s" = "on on on 400" ] || die "PostgreSQL settings are '$s', expected 'on on on 400'"
    note "PostgreSQL is up (fsync, synchronous_commit, full_page_writes, max_connections: $s)"
}

# pg_ctl_as ARGS...: pg_ctl on this instance, as the postgres user, logging to its log.
pg_ctl_as() {
    as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg/postgres.log" "$@"
}

psql_q() {
    PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U cloak -d postgres -v ON_ERROR_STOP=1 -qAtX "$@"
}

stop_postgres() {
    if [ "$PG_STARTED" = 1 ]; then
        note "stopping PostgreSQL"
        as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            note "warning: pg_ctl stop failed (log: $WORK/pg/postgres.log)"
        PG_STARTED=0
    fi
}

# start_redis [redis-server options...]: starts Redis without persistence, on REDIS_PORT
# if set (a restart), else on a free port, and waits until it answers.
start_redis() {
    command -v redis-server >/dev/null || die "redis-server not found"
    command -v redis-cli >/dev/null || die "redis-cli not found"
    make_work_dir "${WORK_PREFIX:-cloak}" "${WORK_DISK:-}"
    mkdir -p "$WORK/redis"
    [ -n "$REDIS_PORT" ] || REDIS_PORT=$(free_port)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize no --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" "$@" &
    REDIS_PID=$!
    local _i
    for _i in $(seq 1 100); do
        kill -0 "$REDIS_PID" 2>/dev/null || { cat "$WORK/redis/redis.log" >&2 || true; die "Redis exited"; }
        if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
            note "Redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//') is up on port $REDIS_PORT (pid $REDIS_PID, no persistence)"
            return 0
        fi
        sleep 0.1
    done
    die "Redis did not answer within 10 s"
}

stop_redis() {
    if [ -n "$REDIS_PID" ]; then
        note "stopping Redis (pid $REDIS_PID)"
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    fi
}
