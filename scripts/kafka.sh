#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1 for tests
# and benchmarks, assembled from Maven Central jars and run with the machine's Java.
#
#   scripts/kafka.sh fetch              resolve the jars (once; cached in $PQA_KAFKA_HOME)
#   scripts/kafka.sh start DIR          format DIR and start a broker on free ports; prints the
#                                       bootstrap address (also in DIR/bootstrap)
#   scripts/kafka.sh stop DIR           stop it (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh restart DIR        stop and start again on the same ports and data
#   scripts/kafka.sh kill DIR           SIGKILL, for crash tests
#   scripts/kafka.sh set-password DIR PW  restart with PW as the SASL user's password (a
#                                       credential rotation on the brokers' side)
#
# Besides the PLAINTEXT listener, the broker has a SASL_SSL one (SASL/PLAIN over TLS, a
# certificate for 127.0.0.1 signed by a CA made at start) so that tests can run the service
# the way a secured cluster needs: its address is DIR/secure_bootstrap, the CA DIR/tls/ca.pem,
# the user "scorer" with the password in DIR/sasl_password.
#
# PQA_KAFKA_BROKER_PROPERTIES, if set when the broker's configuration is written (start,
# set-password), is appended to it: extra broker properties, one per line, for benchmarks of a
# broker setting (bench/RESULTS.md §5d), and for the tests that need a broker configured
# otherwise (tests/integration/test_streaming.cpp: auto-created topics, a faster sweep of
# timed-out transactions). The other tests run on the defaults.
#
# The broker's log is DIR/server.log. Needs java (17), mvn and openssl
# (scripts/install-deps.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
home=${PQA_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/pqa/kafka-$version}
libs=$home/libs

die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

fetch() {
  [[ -f $libs/.complete ]] && return 0
  command -v mvn >/dev/null || die "mvn not found (run scripts/install-deps.sh)"
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2 ||
    die "could not resolve Kafka $version from Maven Central"
  touch "$libs/.complete"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

run_java() {  # run_java DIR MAIN ARGS... (call in a subshell: it execs, so $! is java's pid)
  local dir=$1 main=$2
  shift 2
  exec java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$libs/*" "$main" "$@"
}

write_tls_material() {  # write_tls_material DIR: a CA, and a server certificate for 127.0.0.1
  local tls=$1/tls
  rm -rf "$tls"
  mkdir -p "$tls"
  command -v openssl >/dev/null || die "openssl not found (run scripts/install-deps.sh)"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=pqa test CA" \
      -keyout "$tls/ca.key" -out "$tls/ca.pem"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$tls/server.key" -out "$tls/server.csr"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext"
    openssl x509 -req -days 30 -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
      -CAcreateserial -extfile "$tls/san.ext" -out "$tls/server.pem"
  } >"$tls/openssl.log" 2>&1 || die "making the test certificates failed: $(cat "$tls/openssl.log")"
  # Kafka's PEM key store: the (PKCS#8, unencrypted) key, then the certificate chain.
  cat "$tls/server.key" "$tls/server.pem" "$tls/ca.pem" >"$tls/keystore.pem"
  python3 -c 'import secrets; print(secrets.token_hex(16))' >"$1/sasl_password"
}

write_config() {  # write_config DIR PORT CONTROLLER_PORT SECURE_PORT
  local dir=$1 port=$2 cport=$3 sport=$4
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sport
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_scorer="$(cat "$dir/sasl_password")";
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/keystore.pem
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
# Tests compact changelogs and scores topics within seconds.
log.cleaner.backoff.ms=1000
${PQA_KAFKA_BROKER_PROPERTIES:-}
PROPS
  cat >"$dir/log4j.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
PROPS
}

launch() {  # launch DIR: starts the configured broker and waits until it serves
  local dir=$1
  : >"$dir/server.log"
  (run_java "$dir" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1) &
  echo $! >"$dir/pid"
  local port
  port=$(cat "$dir/port")
  for _ in $(seq 1 600); do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      tail -20 "$dir/server.log" "$dir/stdout.log" >&2 || true
      die "broker exited during start-up (log: $dir/server.log)"
    fi
    if grep -q "Kafka Server started" "$dir/server.log" 2>/dev/null &&
      python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
      echo "127.0.0.1:$port" >"$dir/bootstrap"
      echo "127.0.0.1:$(cat "$dir/secure_port")" >"$dir/secure_bootstrap"
      cat "$dir/bootstrap"
      return 0
    fi
    sleep 0.1
  done
  die "broker did not start within 60 s (log: $dir/server.log)"
}

start() {
  local dir=$1
  fetch
  command -v java >/dev/null || die "java not found (run scripts/install-deps.sh)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ -f $dir/pid ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && die "a broker already runs in $dir"
  rm -rf "$dir/data"
  local port cport sport
  port=$(free_port)
  cport=$(free_port)
  while [[ $cport == "$port" ]]; do cport=$(free_port); done
  sport=$(free_port)
  while [[ $sport == "$port" || $sport == "$cport" ]]; do sport=$(free_port); done
  echo "$port" >"$dir/port"
  echo "$sport" >"$dir/secure_port"
  echo "$cport" >"$dir/controller_port"
  write_tls_material "$dir"
  write_config "$dir" "$port" "$cport" "$sport"
  local cluster_id
  cluster_id=$( (run_java "$dir" kafka.tools.StorageTool random-uuid))
  (run_java "$dir" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties") \
    >"$dir/format.log" 2>&1 || die "formatting $dir/data failed: $(cat "$dir/format.log")"
  launch "$dir"
}

stop() {  # stop DIR [SIGNAL]
  local dir=$1 signal=${2:-TERM}
  [[ -f $dir/pid ]] || return 0
  local pid
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

case ${1:-} in
  fetch) fetch ;;
  start) start "${2:?usage: kafka.sh start DIR}" ;;
  stop) stop "${2:?usage: kafka.sh stop DIR}" ;;
  kill) stop "${2:?usage: kafka.sh kill DIR}" KILL ;;
  restart)
    stop "${2:?usage: kafka.sh restart DIR}"
    launch "$(cd "$2" && pwd)"
    ;;
  set-password)
    dir=$(cd "${2:?usage: kafka.sh set-password DIR PASSWORD}" && pwd)
    password=${3:?usage: kafka.sh set-password DIR PASSWORD}
    # It goes into a JAAS line between double quotes: keep to characters that need no escaping.
    [[ $password =~ ^[A-Za-z0-9._-]+$ ]] || die "a password of letters, digits, '.', '_', '-' only"
    [[ -f $dir/controller_port ]] || die "$dir has no broker started by this script"
    port=$(cat "$dir/port")
    cport=$(cat "$dir/controller_port")
    sport=$(cat "$dir/secure_port")
    stop "$dir"
    printf '%s\n' "$password" >"$dir/sasl_password"
    write_config "$dir" "$port" "$cport" "$sport"
    launch "$dir"
    ;;
  *)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
