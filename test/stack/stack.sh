#!/usr/bin/env bash
# The local stack of real servers that tests, the demo and the benchmarks share, all on loopback:
#   kube-apiserver + etcd (no kubelet, as envtest), PostgreSQL with TLS, moto's server for AWS.
# Usage: stack.sh up | down | status | restart-apiserver | stop-apiserver | start-apiserver | stop-postgres | start-postgres | stop-demo
# State lives in .stack/ (git-ignored); .stack/env.sh exports what clients need.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
state="${STEWARD_STACK_DIR:-$repo/.stack}"
pids="$state/pids"
logs="$state/logs"

die() { echo "stack: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls until COMMAND succeeds, or fails with the log to read.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what did not come up within ${seconds}s; see $logs"
    sleep 0.2
  done
}

alive() { [ -f "$pids/$1" ] && kill -0 "$(cat "$pids/$1")" 2>/dev/null; }

stop_pid() {
  local name=$1
  [ -f "$pids/$name" ] || return 0
  local pid; pid=$(cat "$pids/$name")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pids/$name"
}

pg_bin() {
  local dir
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return; fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  done
  return 1
}

# Runs a PostgreSQL server binary as a non-root user: PostgreSQL refuses to run as root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

check_prerequisites() {
  need python3 "install Python 3"
  need openssl "install openssl (apt-get install openssl)"
  need curl "install curl (apt-get install curl)"
  need moto_server "install moto's server (pip install 'moto[server]')"
  pg_bin >/dev/null || die "PostgreSQL server binaries (initdb, pg_ctl) are missing: install PostgreSQL 15 or newer (apt-get install postgresql)"
  if [ "$(id -u)" = 0 ]; then
    need runuser "install util-linux (runuser), needed to run PostgreSQL as a non-root user"
    id postgres >/dev/null 2>&1 || die "no 'postgres' user to run PostgreSQL as (apt-get install postgresql creates it, or: useradd -r postgres)"
  fi
}

make_certs() {
  local d=$state/pki
  mkdir -p "$d"
  (
    cd "$d"
    # One CA per run for PostgreSQL, one for the API server's serving cert, one for its clients.
    for ca in pg-ca kube-ca client-ca; do
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=steward-test-$ca" \
        -keyout "$ca.key" -out "$ca.crt" 2>/dev/null
    done
    san="subjectAltName=DNS:localhost,IP:127.0.0.1"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout pg-server.key -out pg-server.csr 2>/dev/null
    openssl x509 -req -in pg-server.csr -CA pg-ca.crt -CAkey pg-ca.key -CAcreateserial -days 2 \
      -extfile <(echo "$san") -out pg-server.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA kube-ca.crt -CAkey kube-ca.key -CAcreateserial -days 2 \
      -extfile <(echo "$san,DNS:kubernetes.default.svc") -out apiserver.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" -keyout admin.key -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA client-ca.crt -CAkey client-ca.key -CAcreateserial -days 2 \
      -extfile <(echo "extendedKeyUsage=clientAuth") -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.srl
    chmod 600 ./*.key
  )
}

start_etcd() {
  local bin=$1
  "$bin/etcd" --name steward-test --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "steward-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=4294967296 --log-level=warn >>"$logs/etcd.log" 2>&1 &
  echo $! >"$pids/etcd"
  wait_for etcd 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  local bin=$1 d=$state/pki
  "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --cert-dir "$state/apiserver-certs" \
    --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" \
    --secure-port "$KUBE_PORT" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode RBAC \
    --client-ca-file "$d/client-ca.crt" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --disable-admission-plugins ServiceAccount \
    --allow-privileged=true >>"$logs/kube-apiserver.log" 2>&1 &
  echo $! >"$pids/kube-apiserver"
  wait_for kube-apiserver 120 curl -sf --cacert "$d/kube-ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
    "https://127.0.0.1:$KUBE_PORT/readyz"
}

write_kubeconfig() {
  local d=$state/pki
  cat >"$state/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: steward-test
  cluster:
    server: https://127.0.0.1:$KUBE_PORT
    certificate-authority: $d/kube-ca.crt
users:
- name: admin
  user:
    client-certificate: $d/admin.crt
    client-key: $d/admin.key
contexts:
- name: steward-test
  context: {cluster: steward-test, user: admin}
current-context: steward-test
EOF
  chmod 600 "$state/kubeconfig"
}

start_postgres() {
  local bin; bin=$(pg_bin)
  local data=$state/pg/data sock=$state/pg/sock
  mkdir -p "$state/pg" "$sock"
  cp "$state/pki/pg-server.crt" "$state/pki/pg-server.key" "$state/pg/"
  head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$state/pg/superuser.pw"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$state/pg"
  chmod 600 "$state/pg/pg-server.key" "$state/pg/superuser.pw"
  as_pg "$bin/initdb" -D "$data" -U postgres --auth=scram-sha-256 --pwfile="$state/pg/superuser.pw" \
    --encoding=UTF8 --locale=C.UTF-8 >>"$logs/postgres.log" 2>&1 || die "initdb failed; see $logs/postgres.log"
  # Only TLS over loopback is accepted: a plaintext connection is rejected by the server itself.
  as_pg tee "$data/pg_hba.conf" >/dev/null <<EOF
local     all all                 scram-sha-256
hostssl   all all 127.0.0.1/32    scram-sha-256
hostnossl all all 0.0.0.0/0       reject
EOF
  as_pg tee -a "$data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
ssl = on
ssl_cert_file = '$state/pg/pg-server.crt'
ssl_key_file = '$state/pg/pg-server.key'
ssl_min_protocol_version = 'TLSv1.2'
max_connections = 400
# A throwaway test server: durability is not what is under test.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  as_pg "$bin/pg_ctl" -D "$data" -l "$state/pg/server.log" -w -t 60 start >>"$logs/postgres.log" 2>&1 \
    || die "PostgreSQL did not start; see $state/pg/server.log"
  as_pg cat "$data/postmaster.pid" | head -1 >"$pids/postgres"
}

start_moto() {
  moto_server -H 127.0.0.1 -p "$MOTO_PORT" >>"$logs/moto.log" 2>&1 &
  echo $! >"$pids/moto"
  wait_for moto 60 curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/"
}

write_env() {
  cat >"$state/env.sh" <<EOF
# Written by test/stack/stack.sh for this run of the local stack. Source it: . .stack/env.sh
export STEWARD_STACK_DIR='$state'
export KUBECONFIG='$state/kubeconfig'
export KUBE_APISERVER_BIN='$KUBE_BIN'
export ETCD_PORT='$ETCD_PORT' ETCD_PEER_PORT='$ETCD_PEER_PORT' KUBE_PORT='$KUBE_PORT'
export PGHOST=localhost PGPORT='$PG_PORT' PGUSER=postgres PGDATABASE=postgres
export PGPASSWORD='$(cat "$state/pg/superuser.pw")'
export PGSSLMODE=verify-full PGSSLROOTCERT='$state/pki/pg-ca.crt'
export PG_SOCKET_DIR='$state/pg/sock'
export AWS_ENDPOINT_URL='http://127.0.0.1:$MOTO_PORT'
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
EOF
  chmod 600 "$state/env.sh"
}

up() {
  check_prerequisites
  if [ -f "$state/env.sh" ] && alive kube-apiserver && alive etcd && alive postgres && alive moto; then
    echo "stack: already up; source $state/env.sh"; return 0
  fi
  down quiet
  KUBE_BIN=$("$repo/test/stack/build-apiserver.sh") || die "could not build or find kube-apiserver and etcd"
  rm -rf "$state"; mkdir -p "$pids" "$logs"
  ETCD_PORT=$(free_port); ETCD_PEER_PORT=$(free_port); KUBE_PORT=$(free_port); PG_PORT=$(free_port); MOTO_PORT=$(free_port)
  make_certs
  # The three servers are independent: start them side by side, then the API server on etcd.
  start_etcd "$KUBE_BIN" & local etcd_job=$!
  start_postgres & local pg_job=$!
  start_moto & local moto_job=$!
  wait $etcd_job && wait $pg_job && wait $moto_job || die "a server failed to start; see $logs"
  start_apiserver "$KUBE_BIN"
  write_kubeconfig
  write_env
  echo "stack: up. kube-apiserver https://127.0.0.1:$KUBE_PORT, PostgreSQL localhost:$PG_PORT (TLS), moto http://127.0.0.1:$MOTO_PORT"
  echo "stack: source $state/env.sh"
}

down() {
  [ -d "$state" ] || return 0
  stop_pid steward   # the demo's operator, if it runs
  stop_pid kube-apiserver
  stop_pid etcd
  stop_pid moto
  if alive postgres; then
    local bin; bin=$(pg_bin)
    as_pg "$bin/pg_ctl" -D "$state/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
  stop_pid postgres
  [ "${1:-}" = quiet ] || echo "stack: down"
}

restart_apiserver() {
  # shellcheck disable=SC1091
  . "$state/env.sh"
  stop_pid kube-apiserver
  start_apiserver "$KUBE_APISERVER_BIN"
  echo "stack: kube-apiserver restarted"
}

# The same in two halves, for a test that acts while the API server is away.
stop_apiserver() {
  stop_pid kube-apiserver
  echo "stack: kube-apiserver stopped"
}

start_apiserver_again() {
  # shellcheck disable=SC1091
  . "$state/env.sh"
  start_apiserver "$KUBE_APISERVER_BIN"
  echo "stack: kube-apiserver started"
}

# An outage of the warehouse, for the tests that prove what Steward says during one: a fast
# shutdown (sessions are told and closed), then the same server back on the same port.
stop_postgres() {
  local bin; bin=$(pg_bin)
  as_pg "$bin/pg_ctl" -D "$state/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 || die "PostgreSQL did not stop"
  echo "stack: postgres stopped"
}

start_postgres_again() {
  local bin; bin=$(pg_bin)
  as_pg "$bin/pg_ctl" -D "$state/pg/data" -l "$state/pg/server.log" -w -t 60 start >>"$logs/postgres.log" 2>&1 \
    || die "PostgreSQL did not start; see $state/pg/server.log"
  as_pg cat "$state/pg/data/postmaster.pid" | head -1 >"$pids/postgres"
  echo "stack: postgres started"
}

# The demo leaves a Steward running; tests start their own and must be the only operator.
stop_demo() {
  stop_pid steward
}

status() {
  for p in etcd kube-apiserver postgres moto; do
    if alive $p; then echo "$p: running (pid $(cat "$pids/$p"))"; else echo "$p: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  restart-apiserver) restart_apiserver ;;
  stop-apiserver) stop_apiserver ;;
  start-apiserver) start_apiserver_again ;;
  stop-postgres) stop_postgres ;;
  start-postgres) start_postgres_again ;;
  stop-demo) stop_demo ;;
  *) echo "usage: $0 up|down|status|restart-apiserver|stop-apiserver|start-apiserver|stop-postgres|start-postgres|stop-demo" >&2; exit 2 ;;
esac
