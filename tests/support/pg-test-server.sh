#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# A throw-away PostgreSQL server for the test run.
#
#   pg-test-server.sh start DIR   initdb into DIR/data, start it on 127.0.0.1 at a free port
#                                 and on a Unix socket in DIR, create the test database and
#                                 write DIR/conninfo
#   pg-test-server.sh stop DIR    stop the server (pg_ctl stop -m fast) and remove DIR
#
# DIR/conninfo holds KEY=VALUE lines:
#   host, port, dbname, user   superuser "sluice_test", trusted on the socket and on TCP
#   socket                     the Unix socket directory (a host value for libpq)
#   password_user              a role that must give a password over TCP (scram-sha-256)
#   password_file              file holding that role's password
#
# As root (CI), the server runs as the "postgres" system user (Debian package postgresql)
# through runuser, with DIR owned by it; as any other user it runs as that user.
# The PostgreSQL binaries are found in $PG_BIN, else the newest /usr/lib/postgresql/*/bin,
# else on PATH. fsync is off: this cluster holds nothing worth keeping.

set -eu

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
command=$1
dir=$2
case $dir in
    /*) ;;
    *) dir=$(pwd)/$dir ;;
esac

find_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        echo "$PG_BIN"
        return
    fi
    newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$newest" ] && [ -x "$newest/initdb" ]; then
        echo "$newest"
        return
    fi
    if initdb=$(command -v initdb 2>/dev/null); then
        dirname "$initdb"
        return
    fi
    echo "pg-test-server: no PostgreSQL server binaries (install the package postgresql, or set PG_BIN)" >&2
    exit 1
}

# Runs a command as the user the server runs as.
as_server_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        # No python: a pseudo-random high port; a taken one makes pg_ctl fail and we retry.
        echo $(( 20000 + ($$ * 7919 + $(date +%N | sed 's/^0*//;s/^$/0/') ) % 40000 ))
    fi
}

stop_server() {
    bin=$(find_bin)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_server_user "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_server_user "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

start_server() {
    bin=$(find_bin)
    # A previous run that was killed may have left a server behind.
    stop_server

    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "pg-test-server: running as root needs the system user 'postgres' (package postgresql)" >&2
            exit 1
        fi
        chown postgres: "$dir"
        chmod 700 "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            echo "pg-test-server: user postgres cannot reach $dir; make its parent directories traversable (chmod o+x)" >&2
            exit 1
        fi
    fi
    # A Unix socket path is limited to 107 bytes; ".s.PGSQL.NNNNN" takes 15 of them.
    if [ "${#dir}" -gt 90 ]; then
        echo "pg-test-server: $dir is too long for a Unix socket directory (at most 90 characters)" >&2
        exit 1
    fi

    as_server_user "$bin/initdb" -D "$dir/data" -U sluice_test --auth=trust -E UTF8 --no-locale --no-sync \
        >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    # First match wins: the password role must authenticate over TCP, everything else is trusted.
    printf '%s\n' \
        'local all all trust' \
        'host all sluice_pw 127.0.0.1/32 scram-sha-256' \
        'host all all 127.0.0.1/32 trust' |
        as_server_user sh -c "cat > '$dir/data/pg_hba.conf'"

    attempt=1
    while :; do
        port=$(free_port)
        if as_server_user "$bin/pg_ctl" -D "$dir/data" -w -t 60 -l "$dir/server.log" \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null; then
            break
        fi
        if [ "$attempt" -ge 5 ]; then
            echo "pg-test-server: the server did not start; its log:" >&2
            cat "$dir/server.log" >&2 || true
            exit 1
        fi
        attempt=$((attempt + 1))
    done

    password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    psql="$bin/psql"
    [ -x "$psql" ] || psql=psql
    "$psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U sluice_test -d postgres \
        -c 'CREATE DATABASE sluice_test' \
        -c "CREATE ROLE sluice_pw LOGIN CREATEDB PASSWORD '$password'"

    umask 077
    printf '%s\n' "$password" >"$dir/password"
    cat >"$dir/conninfo.tmp" <<EOF
host=127.0.0.1
port=$port
dbname=sluice_test
user=sluice_test
socket=$dir
password_user=sluice_pw
password_file=$dir/password
EOF
    # Written last and atomically: its presence means the server is ready.
    mv "$dir/conninfo.tmp" "$dir/conninfo"
    chmod 644 "$dir/conninfo"
    echo "pg-test-server: $("$bin/postgres" -V) on 127.0.0.1:$port and $dir, conninfo in $dir/conninfo"
}

case $command in
    start) start_server ;;
    stop) stop_server ;;
    *) usage ;;
esac
