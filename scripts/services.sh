#!/usr/bin/env bash
# The local service stack that tests, CI, the demo and newcomers share.
#
#   scripts/services.sh up     [postgres redis spark storage]   install what is missing, start, wait healthy
#   scripts/services.sh down   [postgres redis spark storage]   stop what this script started
#   scripts/services.sh status [postgres redis spark storage]
#   scripts/services.sh env                                     export lines for DATABASE_URL, REDIS_URL, …
#
# Opt-in services (never started by a bare `up`; tests that need one start it themselves):
#   pgbouncer      PgBouncer in transaction mode in front of postgres (LAKEFERRY_PGBOUNCER_URL)
#   secure         a Postgres that takes only TLS + scram-sha-256, and a Redis that takes only TLS + a
#                  password, with a self-signed CA made by openssl (LAKEFERRY_SECURE_DATABASE_URL,
#                  LAKEFERRY_SECURE_REDIS_URL, LAKEFERRY_TLS_CA_FILE)
#   redis-cluster  a Redis Cluster of 3 masters on loopback (LAKEFERRY_REDIS_CLUSTER_URL: one of its nodes)
#
# Idempotent: a service that already answers is left alone. Downloads are cached in .cache/ (git-ignored),
# state and logs live in .services/ (git-ignored). Everything binds to 127.0.0.1.
#
# Environment overrides: LAKEFERRY_PG_PORT (55432), LAKEFERRY_REDIS_PORT (56379), LAKEFERRY_SPARK_PORT (15002),
# LAKEFERRY_SPARK_NAME (lakeferry-spark: a second Spark server needs its own name and port),
# LAKEFERRY_SPARK_VERSION (4.0.1; 3.5.x, 4.0.x and 4.1.x are supported, and can run side by side),
# LAKEFERRY_SPARK_MEMORY (2g), LAKEFERRY_SPARK_MASTER (local[2]), LAKEFERRY_CATALOG_IDLE_MS (300000: Postgres
# ends Iceberg catalog connections idle this long), LAKEFERRY_SERVICES_DIR, LAKEFERRY_CACHE_DIR;
# for the opt-in services LAKEFERRY_PGBOUNCER_PORT (postgres port + 1), LAKEFERRY_PGBOUNCER_POOL_SIZE (5),
# LAKEFERRY_SECURE_PG_PORT (postgres port + 2), LAKEFERRY_SECURE_REDIS_PORT (redis port + 1),
# LAKEFERRY_REDIS_CLUSTER_PORT (redis port + 2: the cluster's 3 nodes take that port and the next two, their
# cluster bus ports the three after those).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES_DIR=${LAKEFERRY_SERVICES_DIR:-$ROOT/.services}
CACHE_DIR=${LAKEFERRY_CACHE_DIR:-$ROOT/.cache}
PG_PORT=${LAKEFERRY_PG_PORT:-55432}
REDIS_PORT=${LAKEFERRY_REDIS_PORT:-56379}
SPARK_PORT=${LAKEFERRY_SPARK_PORT:-15002}
SPARK_NAME=${LAKEFERRY_SPARK_NAME:-lakeferry-spark}
SPARK_MEMORY=${LAKEFERRY_SPARK_MEMORY:-2g}
SPARK_MASTER=${LAKEFERRY_SPARK_MASTER:-local[2]}

PG_BIN=${LAKEFERRY_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=lakeferry
PG_PASSWORD=lakeferry
PG_DATA=$SERVICES_DIR/postgres

# Spark Connect versions lakeferry supports, each with the jars known to work with it: the Iceberg runtime for
# its Spark line and Scala, the Postgres JDBC driver for the catalog, and S3A for its Hadoop (hadoop-aws plus
# the AWS SDK bundle that hadoop-aws version declares). 3.5's pyspark carries no connect server jar.
SPARK_VERSION=${LAKEFERRY_SPARK_VERSION:-4.0.1}
case "$SPARK_VERSION" in
  3.5.*)
    SPARK_JARS=(
      "org.apache.spark:spark-connect_2.12:$SPARK_VERSION"
      org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.0
      org.apache.hadoop:hadoop-aws:3.3.4
      com.amazonaws:aws-java-sdk-bundle:1.12.262
    )
    ;;
  4.0.*)
    SPARK_JARS=(
      org.apache.iceberg:iceberg-spark-runtime-4.0_2.13:1.10.0
      org.apache.hadoop:hadoop-aws:3.4.1
      software.amazon.awssdk:bundle:2.24.6
    )
    ;;
  4.1.*)
    SPARK_JARS=(
      org.apache.iceberg:iceberg-spark-runtime-4.1_2.13:1.12.0
      org.apache.hadoop:hadoop-aws:3.4.2
      software.amazon.awssdk:bundle:2.29.52
      software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.2.1
    )
    ;;
  *)
    echo "services: LAKEFERRY_SPARK_VERSION=$SPARK_VERSION is not supported; use 3.5.x, 4.0.x or 4.1.x" >&2
    exit 2
    ;;
esac
SPARK_JARS+=(org.postgresql:postgresql:42.7.8)
SPARK_HOME_DIR=$CACHE_DIR/spark-$SPARK_VERSION
# One directory per version: every jar in it goes on that server's classpath.
JARS_DIR=$CACHE_DIR/jars/spark-$SPARK_VERSION

LOG_TAG=services
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
  log "$what is up"
}

apt_install() {
  log "installing $* from Debian packages"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
}

# ---------------------------------------------------------------- postgres
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

psql_admin() { as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

postgres_up() {
  [ -x "$PG_BIN/postgres" ] || apt_install postgresql-15
  if ! pg_ready; then
    mkdir -p "$PG_DATA"
    [ "$(id -u)" = 0 ] && chown -R postgres "$PG_DATA" && chmod 700 "$PG_DATA"
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
      log "initialising postgres in $PG_DATA"
      as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    log "starting postgres on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $PG_PORT -k $PG_DATA -c max_connections=400 -c shared_buffers=256MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null || die "postgres did not start; see $PG_DATA/server.log"
  fi
  wait_for postgres 60 pg_ready || die "postgres does not answer on port $PG_PORT"
  if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]; then
    psql_admin -c "CREATE ROLE $PG_USER LOGIN SUPERUSER PASSWORD '$PG_PASSWORD'"
  fi
  local db
  for db in lakeferry lakeferry_catalog; do
    if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
      psql_admin -c "CREATE DATABASE $db OWNER $PG_USER"
    fi
  done
}

postgres_down() {
  [ -f "$PG_DATA/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  log "postgres stopped"
}

postgres_status() { pg_ready && echo "postgres: up on 127.0.0.1:$PG_PORT" || echo "postgres: down"; }

# ---------------------------------------------------------------- redis
REDIS_DIR=$SERVICES_DIR/redis
redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

redis_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  # The Debian package starts its own server on 6379 when a service manager runs; ours is separate.
  if ! redis_ready; then
    mkdir -p "$REDIS_DIR"
    log "starting redis on 127.0.0.1:$REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$REDIS_DIR" \
      --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
      --maxmemory-policy noeviction >/dev/null
  fi
  wait_for redis 30 redis_ready || die "redis does not answer on port $REDIS_PORT"
}

redis_down() {
  local pid
  pid=$(cat "$REDIS_DIR/redis.pid" 2>/dev/null || true)
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    log "redis stopped"
  fi
  rm -f "$REDIS_DIR/redis.pid"
}

redis_status() { redis_ready && echo "redis: up on 127.0.0.1:$REDIS_PORT" || echo "redis: down"; }

# ---------------------------------------------------------------- pgbouncer (opt-in)
PGBOUNCER_PORT=${LAKEFERRY_PGBOUNCER_PORT:-$((PG_PORT + 1))}
PGBOUNCER_POOL_SIZE=${LAKEFERRY_PGBOUNCER_POOL_SIZE:-5}
PGBOUNCER_DIR=$SERVICES_DIR/pgbouncer

pgbouncer_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGBOUNCER_PORT" -d lakeferry; }

pgbouncer_up() {
  postgres_up
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || apt_install pgbouncer
  # The Debian package starts its own pgbouncer on 6432 when a service manager runs; ours is separate.
  if ! pgbouncer_ready; then
    mkdir -p "$PGBOUNCER_DIR"
    # Every database name maps to the same name on our postgres (tests use databases of their own), in
    # transaction mode: a server connection serves a client for one transaction, then the next client.
    cat >"$PGBOUNCER_DIR/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$PG_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGBOUNCER_DIR/userlist.txt
pool_mode = transaction
default_pool_size = $PGBOUNCER_POOL_SIZE
max_client_conn = 500
logfile = $PGBOUNCER_DIR/pgbouncer.log
pidfile = $PGBOUNCER_DIR/pgbouncer.pid
INI
    printf '"%s" "%s"\n' "$PG_USER" "$PG_PASSWORD" >"$PGBOUNCER_DIR/userlist.txt"
    # PgBouncer refuses to run as root.
    [ "$(id -u)" = 0 ] && chown -R postgres "$PGBOUNCER_DIR"
    log "starting pgbouncer (transaction mode, pool of $PGBOUNCER_POOL_SIZE) on 127.0.0.1:$PGBOUNCER_PORT"
    as_pg "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" -d "$PGBOUNCER_DIR/pgbouncer.ini" >/dev/null ||
      die "pgbouncer did not start; see $PGBOUNCER_DIR/pgbouncer.log"
  fi
  wait_for pgbouncer 30 pgbouncer_ready || die "pgbouncer does not answer on port $PGBOUNCER_PORT"
}

pgbouncer_down() {
  local pid
  pid=$(cat "$PGBOUNCER_DIR/pgbouncer.pid" 2>/dev/null || true)
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    log "pgbouncer stopped"
  fi
}

pgbouncer_status() { pgbouncer_ready && echo "pgbouncer: up on 127.0.0.1:$PGBOUNCER_PORT" || echo "pgbouncer: down"; }

# ---------------------------------------------------------------- secure postgres + redis (opt-in)
SECURE_PG_PORT=${LAKEFERRY_SECURE_PG_PORT:-$((PG_PORT + 2))}
SECURE_REDIS_PORT=${LAKEFERRY_SECURE_REDIS_PORT:-$((REDIS_PORT + 1))}
SECURE_PASSWORD=lakeferry-secret
TLS_DIR=$SERVICES_DIR/tls
SECURE_PG_DATA=$SERVICES_DIR/postgres-secure
SECURE_REDIS_DIR=$SERVICES_DIR/redis-secure

# A CA of our own and a server certificate it signs, for 127.0.0.1 and localhost (verify-full checks both
# the chain and the name).
tls_certificates() {
  [ -f "$TLS_DIR/server.crt" ] && return 0
  command -v openssl >/dev/null || apt_install openssl
  mkdir -p "$TLS_DIR"
  log "making a self-signed CA and server certificate in $TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=lakeferry test CA" \
    -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2>/dev/null
  printf 'subjectAltName = DNS:localhost, IP:127.0.0.1\n' >"$TLS_DIR/server.ext"
  openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -days 3650 -extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server.crt" 2>/dev/null
  chmod 600 "$TLS_DIR/server.key" "$TLS_DIR/ca.key"
}

secure_pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$SECURE_PG_PORT"; }

secure_postgres_up() {
  [ -x "$PG_BIN/postgres" ] || apt_install postgresql-15
  tls_certificates
  if ! secure_pg_ready; then
    mkdir -p "$SECURE_PG_DATA"
    [ "$(id -u)" = 0 ] && chown -R postgres "$SECURE_PG_DATA" && chmod 700 "$SECURE_PG_DATA"
    if [ ! -f "$SECURE_PG_DATA/PG_VERSION" ]; then
      log "initialising the TLS-only postgres in $SECURE_PG_DATA"
      as_pg "$PG_BIN/initdb" -D "$SECURE_PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
      # The key must belong to the server's user and be private to it.
      cp "$TLS_DIR/server.crt" "$TLS_DIR/server.key" "$SECURE_PG_DATA/"
      [ "$(id -u)" = 0 ] && chown postgres "$SECURE_PG_DATA/server.crt" "$SECURE_PG_DATA/server.key"
      # The administrator's Unix socket stays trusted (this script sets the role up through it); over TCP
      # only TLS with a scram-sha-256 password is let in: no plaintext, no md5, no trust.
      cat >"$SECURE_PG_DATA/pg_hba.conf" <<HBA
local     all  postgres                 trust
hostssl   all  all       127.0.0.1/32   scram-sha-256
HBA
    fi
    log "starting the TLS-only postgres on 127.0.0.1:$SECURE_PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$SECURE_PG_DATA" -l "$SECURE_PG_DATA/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $SECURE_PG_PORT -k $SECURE_PG_DATA -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c password_encryption=scram-sha-256 -c fsync=off -c max_connections=50" \
      start >/dev/null || die "the TLS-only postgres did not start; see $SECURE_PG_DATA/server.log"
  fi
  wait_for "postgres (TLS only)" 60 secure_pg_ready || die "the TLS-only postgres does not answer on port $SECURE_PG_PORT"
  local admin=("$PG_BIN/psql" -h "$SECURE_PG_DATA" -p "$SECURE_PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [ "$(as_pg "${admin[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]; then
    as_pg "${admin[@]}" -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$SECURE_PASSWORD'"
  fi
  if [ "$(as_pg "${admin[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'lakeferry'")" != 1 ]; then
    as_pg "${admin[@]}" -c "CREATE DATABASE lakeferry OWNER $PG_USER"
  fi
}

secure_redis_ready() {
  [ "$(REDISCLI_AUTH=$SECURE_PASSWORD redis-cli --tls --cacert "$TLS_DIR/ca.crt" -h 127.0.0.1 -p "$SECURE_REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

secure_redis_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  tls_certificates
  if ! secure_redis_ready; then
    mkdir -p "$SECURE_REDIS_DIR"
    log "starting the TLS-only redis on 127.0.0.1:$SECURE_REDIS_PORT"
    # --port 0: no plaintext port at all. Clients need no certificate of their own, only the password.
    redis-server --bind 127.0.0.1 --port 0 --tls-port "$SECURE_REDIS_PORT" \
      --tls-cert-file "$TLS_DIR/server.crt" --tls-key-file "$TLS_DIR/server.key" \
      --tls-ca-cert-file "$TLS_DIR/ca.crt" --tls-auth-clients no --requirepass "$SECURE_PASSWORD" \
      --save "" --appendonly no --dir "$SECURE_REDIS_DIR" --daemonize yes \
      --pidfile "$SECURE_REDIS_DIR/redis.pid" --logfile "$SECURE_REDIS_DIR/redis.log" \
      --maxmemory-policy noeviction >/dev/null
  fi
  wait_for "redis (TLS only)" 30 secure_redis_ready || die "the TLS-only redis does not answer on port $SECURE_REDIS_PORT"
}

secure_up() {
  secure_postgres_up
  secure_redis_up
}

secure_down() {
  if [ -f "$SECURE_PG_DATA/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$SECURE_PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    log "the TLS-only postgres stopped"
  fi
  local pid
  pid=$(cat "$SECURE_REDIS_DIR/redis.pid" 2>/dev/null || true)
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    log "the TLS-only redis stopped"
  fi
  rm -f "$SECURE_REDIS_DIR/redis.pid"
}

secure_status() {
  secure_pg_ready && echo "postgres (TLS only): up on 127.0.0.1:$SECURE_PG_PORT" || echo "postgres (TLS only): down"
  secure_redis_ready && echo "redis (TLS only): up on 127.0.0.1:$SECURE_REDIS_PORT" || echo "redis (TLS only): down"
}

# ---------------------------------------------------------------- redis cluster (opt-in)
CLUSTER_PORT=${LAKEFERRY_REDIS_CLUSTER_PORT:-$((REDIS_PORT + 2))}
CLUSTER_DIR=$SERVICES_DIR/redis-cluster
cluster_ports() { echo "$CLUSTER_PORT" $((CLUSTER_PORT + 1)) $((CLUSTER_PORT + 2)); }

redis_cluster_ready() {
  redis-cli -h 127.0.0.1 -p "$CLUSTER_PORT" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

redis_cluster_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  redis_cluster_ready && return 0
  local port
  for port in $(cluster_ports); do
    mkdir -p "$CLUSTER_DIR/$port"
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" != PONG ]; then
      # A node's bus port is its port + 10000 unless told: ports above 55535 would overflow, so the bus
      # sits 3 above the node (the three node ports are consecutive, so 3 above is clear of them).
      redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes --cluster-port $((port + 3)) \
        --cluster-config-file "$CLUSTER_DIR/$port/nodes.conf" --cluster-node-timeout 5000 \
        --save "" --appendonly no --dir "$CLUSTER_DIR/$port" --daemonize yes \
        --pidfile "$CLUSTER_DIR/$port/redis.pid" --logfile "$CLUSTER_DIR/$port/redis.log" \
        --maxmemory-policy noeviction >/dev/null
    fi
  done
  for port in $(cluster_ports); do
    wait_for "redis cluster node $port" 30 redis-cli -h 127.0.0.1 -p "$port" ping ||
      die "redis cluster node $port does not answer; see $CLUSTER_DIR/$port/redis.log"
  done
  if [ "$(redis-cli -h 127.0.0.1 -p "$CLUSTER_PORT" cluster info | grep -c '^cluster_slots_assigned:0')" = 1 ]; then
    log "creating a redis cluster of 3 masters on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + 2))"
    # shellcheck disable=SC2046
    redis-cli --cluster create $(for p in $(cluster_ports); do printf '127.0.0.1:%s ' "$p"; done) \
      --cluster-replicas 0 --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1 ||
      die "redis-cli --cluster create failed; see $CLUSTER_DIR/create.log"
  fi
  wait_for "redis cluster" 30 redis_cluster_ready || die "the redis cluster is not ok; see $CLUSTER_DIR/create.log"
}

redis_cluster_down() {
  local port pid stopped=""
  for port in $(cluster_ports); do
    pid=$(cat "$CLUSTER_DIR/$port/redis.pid" 2>/dev/null || true)
    if alive "$pid"; then
      kill "$pid" 2>/dev/null || true
      stopped=1
    fi
    # A cluster's nodes remember each other; the next `up` makes a fresh one.
    rm -f "$CLUSTER_DIR/$port/redis.pid" "$CLUSTER_DIR/$port/nodes.conf"
  done
  [ -z "$stopped" ] || log "redis cluster stopped"
}

redis_cluster_status() {
  redis_cluster_ready && echo "redis cluster: up on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + 2))" || echo "redis cluster: down"
}

# ---------------------------------------------------------------- spark connect
SPARK_DIR=$SERVICES_DIR/$SPARK_NAME

spark_install() {
  if [ ! -x "$SPARK_HOME_DIR/bin/spark-submit" ]; then
    # The pyspark source distribution carries Spark's jars and launch scripts (deps/), and from 4.0 on the
    # connect server too.
    local dl=$CACHE_DIR/dl
    mkdir -p "$dl"
    if ! ls "$dl"/pyspark-$SPARK_VERSION.tar.gz >/dev/null 2>&1; then
      log "downloading pyspark $SPARK_VERSION (Spark's jars, ~450 MB) from PyPI"
      python3 -m pip download --quiet --no-deps --no-binary :all: -d "$dl" "pyspark==$SPARK_VERSION" ||
        die "could not download pyspark $SPARK_VERSION"
    fi
    log "unpacking Spark $SPARK_VERSION"
    rm -rf "$SPARK_HOME_DIR.part"
    mkdir -p "$SPARK_HOME_DIR.part"
    tar -xzf "$dl/pyspark-$SPARK_VERSION.tar.gz" -C "$SPARK_HOME_DIR.part" --strip-components=1
    local deps=$SPARK_HOME_DIR.part/deps
    [ -d "$deps/jars" ] || die "the pyspark sdist has no deps/jars"
    mkdir -p "$SPARK_HOME_DIR.part/spark"
    mv "$deps/jars" "$deps/bin" "$SPARK_HOME_DIR.part/spark/"
    [ -d "$deps/sbin" ] && mv "$deps/sbin" "$SPARK_HOME_DIR.part/spark/"
    rm -rf "$SPARK_HOME_DIR"
    mv "$SPARK_HOME_DIR.part/spark" "$SPARK_HOME_DIR"
    rm -rf "$SPARK_HOME_DIR.part"
    chmod +x "$SPARK_HOME_DIR"/bin/*
  fi
  mkdir -p "$JARS_DIR"
  local coordinate artifact version
  for coordinate in "${SPARK_JARS[@]}"; do
    IFS=: read -r _ artifact version <<<"$coordinate"
    if [ ! -f "$JARS_DIR/$artifact-$version.jar" ]; then
      log "fetching $coordinate from Maven Central"
      mvn -q -B dependency:copy -Dartifact="$coordinate" -DoutputDirectory="$JARS_DIR" -Dmdep.useBaseVersion=true \
        >"$CACHE_DIR/mvn.log" 2>&1 || die "could not fetch $coordinate; see $CACHE_DIR/mvn.log"
    fi
  done
  # Tests write .zst files with the zstd command.
  command -v zstd >/dev/null || apt_install zstd
  compgen -G "$SPARK_HOME_DIR/jars/spark-connect_*.jar" >/dev/null || compgen -G "$JARS_DIR/spark-connect_*.jar" >/dev/null ||
    die "Spark $SPARK_VERSION has no connect server jar"
}

# Hadoop's ZStandardCodec needs libhadoop built with zstd, which Spark distributions lack; our codec
# (spark-ext/zstd-codec) reads .zst through zstd-jni, which every Spark ships with its native library. Built
# with the JDK against this Spark's own jars, once per source version (its hash names the jar). --release 17
# runs on every supported Spark.
ZSTD_CODEC_SRC=$ROOT/spark-ext/zstd-codec/src
ZSTD_CODEC_CLASS=dev.lakeferry.hadoop.ZstdJniCodec
# Hadoop's default codecs (core-default.xml) with ours for .zst: the codec factory keys codecs by extension
# and a later one replaces an earlier one, so ours wins over ZStandardCodec found by the service loader.
ZSTD_CODEC_LIST=org.apache.hadoop.io.compress.DefaultCodec,org.apache.hadoop.io.compress.GzipCodec,org.apache.hadoop.io.compress.BZip2Codec,org.apache.hadoop.io.compress.Lz4Codec,org.apache.hadoop.io.compress.SnappyCodec,$ZSTD_CODEC_CLASS

# Prints the path of the codec jar for this Spark, building it when missing.
zstd_codec_jar() {
  local hash dir jar
  hash=$(cd "$ZSTD_CODEC_SRC" && find . -name '*.java' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
  dir=$CACHE_DIR/zstd-codec/spark-$SPARK_VERSION
  jar=$dir/lakeferry-zstd-codec-$hash.jar
  if [ ! -f "$jar" ]; then
    command -v javac >/dev/null || apt_install openjdk-17-jdk-headless
    log "building the zstd codec jar for Spark $SPARK_VERSION"
    local build
    mkdir -p "$dir"
    build=$(mktemp -d "$dir/build.XXXXXX")
    local classpath
    classpath=$(printf '%s:' "$SPARK_HOME_DIR"/jars/hadoop-client-api-*.jar "$SPARK_HOME_DIR"/jars/zstd-jni-*.jar)
    find "$ZSTD_CODEC_SRC" -name '*.java' -print0 |
      xargs -0 javac --release 17 -nowarn -cp "${classpath%:}" -d "$build/classes" >"$build/javac.log" 2>&1 ||
      die "could not compile the zstd codec; see $build/javac.log"
    jar --create --file "$build/codec.jar" -C "$build/classes" . || die "could not package the zstd codec"
    # Renamed into place whole: another checkout sharing the cache may build the same jar at once.
    mv "$build/codec.jar" "$jar"
    rm -rf "$build"
  fi
  echo "$jar"
}

spark_ready() {
  # The connect server logs this once its gRPC port listens.
  alive "$(cat "$SPARK_DIR/spark.pid" 2>/dev/null || true)" &&
    (exec 3<>"/dev/tcp/127.0.0.1/$SPARK_PORT") 2>/dev/null
}

spark_up() {
  spark_install
  local codec_jar
  codec_jar=$(zstd_codec_jar)
  if spark_ready; then
    local running running_codec
    running=$(cat "$SPARK_DIR/spark.version" 2>/dev/null || echo unknown)
    running_codec=$(cat "$SPARK_DIR/spark.codec" 2>/dev/null || echo none)
    [ "$running" = "$SPARK_VERSION" ] && [ "$running_codec" = "$(basename "$codec_jar")" ] && return 0
    log "$SPARK_NAME runs Spark $running with zstd codec $running_codec; restarting it with $SPARK_VERSION and $(basename "$codec_jar")"
    spark_down
  fi
  local old
  old=$(cat "$SPARK_DIR/spark.pid" 2>/dev/null || true)
  if alive "$old"; then kill "$old" 2>/dev/null || true; fi
  mkdir -p "$SPARK_DIR/tmp" "${LAKEFERRY_WAREHOUSE:-$SERVICES_DIR/warehouse}"
  local warehouse=${LAKEFERRY_WAREHOUSE:-$SERVICES_DIR/warehouse}
  local jars
  jars=$(printf '%s,' "$JARS_DIR"/*.jar "$codec_jar")
  # Each Spark session opens its own Iceberg JDBC catalog, which holds a Postgres connection, and Spark 4.0
  # does not close a session's catalogs when the session ends (SPARK-54367): released and expired sessions
  # keep theirs open (so a shorter spark.connect.session.manager.defaultSessionTimeout frees nothing). So Postgres ends catalog
  # connections idle for LAKEFERRY_CATALOG_IDLE_MS, and Iceberg reconnects and retries a statement that
  # meets such a closed connection (57P05 idle-session timeout; 57P01 admin shutdown, as after a Postgres
  # restart). Catalog connections carry the server's name as application_name (see pg_stat_activity).
  local catalog_idle_ms=${LAKEFERRY_CATALOG_IDLE_MS:-300000}
  log "starting Spark Connect $SPARK_VERSION ($SPARK_NAME) on 127.0.0.1:$SPARK_PORT"
  (
    cd "$SPARK_DIR"
    unset SPARK_REMOTE SPARK_CONNECT_MODE_ENABLED
    export SPARK_HOME=$SPARK_HOME_DIR SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_DIRS=$SPARK_DIR/tmp
    export JAVA_HOME=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}
    nohup "$SPARK_HOME_DIR/bin/spark-submit" \
      --class org.apache.spark.sql.connect.service.SparkConnectServer \
      --name "$SPARK_NAME" \
      --master "$SPARK_MASTER" \
      --driver-memory "$SPARK_MEMORY" \
      --jars "${jars%,}" \
      --conf spark.connect.grpc.binding.address=127.0.0.1 \
      --conf spark.connect.grpc.binding.port="$SPARK_PORT" \
      --conf spark.driver.host=127.0.0.1 \
      --conf spark.driver.bindAddress=127.0.0.1 \
      --conf spark.ui.enabled=false \
      --conf spark.sql.shuffle.partitions=4 \
      --conf spark.sql.session.timeZone=UTC \
      --conf spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions \
      --conf spark.sql.catalog.lake=org.apache.iceberg.spark.SparkCatalog \
      --conf spark.sql.catalog.lake.type=jdbc \
      --conf spark.sql.catalog.lake.uri="jdbc:postgresql://127.0.0.1:$PG_PORT/lakeferry_catalog" \
      --conf spark.sql.catalog.lake.jdbc.user=$PG_USER \
      --conf spark.sql.catalog.lake.jdbc.password=$PG_PASSWORD \
      --conf spark.sql.catalog.lake.jdbc.ApplicationName="$SPARK_NAME" \
      --conf "spark.sql.catalog.lake.jdbc.options=-c idle_session_timeout=$catalog_idle_ms" \
      --conf spark.sql.catalog.lake.retryable_status_codes=57P01,57P05 \
      --conf spark.sql.catalog.lake.jdbc.schema-version=V1 \
      --conf spark.sql.catalog.lake.warehouse="file://$warehouse" \
      --conf spark.sql.catalog.lake.cache-enabled=false \
      --conf spark.hadoop.io.compression.codecs="$ZSTD_CODEC_LIST" \
      --conf spark.hadoop.fs.s3a.endpoint="${LAKEFERRY_S3A_ENDPOINT:-http://127.0.0.1:${LAKEFERRY_S3_PORT:-19000}}" \
      --conf spark.hadoop.fs.s3a.path.style.access=true \
      --conf spark.hadoop.fs.s3a.connection.ssl.enabled=false \
      --conf spark.hadoop.fs.s3a.access.key="${LAKEFERRY_S3A_ACCESS_KEY:-testing}" \
      --conf spark.hadoop.fs.s3a.secret.key="${LAKEFERRY_S3A_SECRET_KEY:-testing}" \
      --conf spark.hadoop.fs.s3a.endpoint.region=us-east-1 \
      --conf spark.hadoop.fs.s3a.change.detection.mode=none \
      --conf spark.hadoop.fs.s3a.aws.credentials.provider=org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider \
      >"$SPARK_DIR/spark.log" 2>&1 &
    echo $! >"$SPARK_DIR/spark.pid"
    echo "$SPARK_VERSION" >"$SPARK_DIR/spark.version"
    basename "$codec_jar" >"$SPARK_DIR/spark.codec"
  )
  wait_for "spark connect ($SPARK_NAME)" 240 spark_ready || {
    tail -30 "$SPARK_DIR/spark.log" >&2 || true
    die "spark connect did not start; see $SPARK_DIR/spark.log"
  }
}

spark_down() {
  local pid
  pid=$(cat "$SPARK_DIR/spark.pid" 2>/dev/null || true)
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    alive "$pid" && kill -9 "$pid" 2>/dev/null || true
    log "spark connect ($SPARK_NAME) stopped"
  fi
  rm -f "$SPARK_DIR/spark.pid"
}

spark_status() {
  if spark_ready; then
    echo "spark ($SPARK_NAME): $(cat "$SPARK_DIR/spark.version" 2>/dev/null || echo "version unknown") up on sc://127.0.0.1:$SPARK_PORT"
  else
    echo "spark ($SPARK_NAME): down"
  fi
}

# ---------------------------------------------------------------- storage emulators
storage_up() { bash "$ROOT/scripts/emulators.sh" up; }
storage_down() { bash "$ROOT/scripts/emulators.sh" down; }
storage_status() { bash "$ROOT/scripts/emulators.sh" status; }

# ---------------------------------------------------------------- env
print_env() {
  cat <<EOF
export DATABASE_URL='postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/lakeferry'
export LAKEFERRY_CATALOG_DATABASE_URL='postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/lakeferry_catalog'
export REDIS_URL='redis://127.0.0.1:$REDIS_PORT'
export SPARK_REMOTE='sc://127.0.0.1:$SPARK_PORT'
export LAKEFERRY_SPARK_VERSION='$(cat "$SPARK_DIR/spark.version" 2>/dev/null || echo "$SPARK_VERSION")'
export LAKEFERRY_WAREHOUSE='${LAKEFERRY_WAREHOUSE:-$SERVICES_DIR/warehouse}'
export LAKEFERRY_SERVICES_DIR='$SERVICES_DIR'
export LAKEFERRY_SERVICES_SCRIPT='$ROOT/scripts/services.sh'
export LAKEFERRY_PGBOUNCER_URL='postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PGBOUNCER_PORT/lakeferry?pgbouncer=true'
export LAKEFERRY_SECURE_DATABASE_URL='postgresql://$PG_USER:$SECURE_PASSWORD@127.0.0.1:$SECURE_PG_PORT/lakeferry?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.crt'
export LAKEFERRY_SECURE_REDIS_URL='rediss://:$SECURE_PASSWORD@127.0.0.1:$SECURE_REDIS_PORT'
export LAKEFERRY_TLS_CA_FILE='$TLS_DIR/ca.crt'
export LAKEFERRY_REDIS_CLUSTER_URL='redis://127.0.0.1:$CLUSTER_PORT'
EOF
  if [ -f "$ROOT/scripts/emulators.sh" ]; then bash "$ROOT/scripts/emulators.sh" env; fi
}

# ---------------------------------------------------------------- main
command=${1:-}
[ $# -gt 0 ] && shift
services=("$@")
if [ ${#services[@]} -eq 0 ]; then
  services=(postgres redis spark)
  [ -f "$ROOT/scripts/emulators.sh" ] && services+=(storage)
fi

case "$command" in
  up)
    mkdir -p "$SERVICES_DIR" "$CACHE_DIR"
    # One `up` at a time per services folder: two at once (a bench started while another `up` installs)
    # would install the same tool into the same folder together and leave it broken. `flock -o` keeps the
    # lock out of the services this starts, which outlive the script.
    if [ -z "${LAKEFERRY_SERVICES_UP_LOCKED:-}" ]; then
      LAKEFERRY_SERVICES_UP_LOCKED=1 exec flock -o "$SERVICES_DIR/.up.lock" bash "$0" up "$@"
    fi
    for s in "${services[@]}"; do
      # Spark's catalog lives in Postgres.
      [ "$s" = spark ] && postgres_up
      "${s//-/_}_up"
    done
    ;;
  down)
    # A bare `down` stops the opt-in services too, if they run.
    [ $# -gt 0 ] || services+=(pgbouncer secure redis-cluster)
    for s in "${services[@]}"; do "${s//-/_}_down"; done
    ;;
  status)
    for s in "${services[@]}"; do "${s//-/_}_status"; done
    ;;
  env) print_env ;;
  *)
    echo "usage: scripts/services.sh up|down|status|env [postgres redis spark storage pgbouncer secure redis-cluster]" >&2
    exit 2
    ;;
esac
