#!/usr/bin/env bash
# Installs (from Debian's packages) and starts the brokers gofedmsg's tests
# use, on loopback only, without systemd. Idempotent: when every port
# already answers with this script's configuration it returns in a second.
#
#   RabbitMQ 3.10: AMQP 127.0.0.1:5672, AMQPS 5671 (SASL EXTERNAL),
#                  STOMP 61613, STOMP+TLS 61614 (client certificate login)
#   ActiveMQ 5.17: OpenWire 127.0.0.1:61616, STOMP 61623
#
# The test PKI (a throw-away CA, a server certificate for localhost and a
# client certificate with CN=bridgeclient) lives in $GOFEDMSG_BROKER_TLS,
# default /etc/gofedmsg-test-tls; the tests read it from there. Its client
# key is world-readable on purpose: it protects nothing but this test broker.
#
# Usage: test/brokers.sh [start|stop|status]
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

TLS=${GOFEDMSG_BROKER_TLS:-/etc/gofedmsg-test-tls}
RABBIT_CONF=/etc/rabbitmq/rabbitmq.conf
RABBIT_ENV=/etc/rabbitmq/rabbitmq-env.conf
AMQ=/etc/activemq/instances-available/main
PORTS=(5672 5671 61613 61614 61616 61623)

log() { echo "brokers: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # wait_port PORT SECONDS WHAT
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  log "$3 is not listening on 127.0.0.1:$1 after $2 s"
  return 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "needs root (or sudo) to run: $*"; exit 1
  fi
}

install_packages() {
  local missing=()
  command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
  [ -d /usr/share/activemq ] || missing+=(activemq)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

make_pki() {
  [ -s "$TLS/client.pem" ] && [ -s "$TLS/server.pem" ] && return 0
  log "making the test PKI in $TLS"
  as_root mkdir -p "$TLS"
  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=gofedmsg-test-broker-ca \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -out server.pem -extfile server.ext
    openssl req -newkey rsa:2048 -nodes -subj /CN=bridgeclient -keyout client.key -out client.csr
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -out client.pem -extfile client.ext
  ) >/dev/null 2>&1
  as_root cp "$tmp"/{ca.pem,ca.key,server.pem,server.key,client.pem,client.key} "$TLS/"
  rm -rf "$tmp"
  as_root chmod 644 "$TLS"/*.pem "$TLS/client.key"
  as_root chmod 640 "$TLS/ca.key" "$TLS/server.key"
  getent group rabbitmq >/dev/null && as_root chgrp rabbitmq "$TLS/server.key" "$TLS/ca.key"
  return 0
}

rabbit_conf() {
  cat <<EOF
# Written by gofedmsg's test/brokers.sh: loopback only, STOMP and TLS for the tests.
listeners.tcp.default = 127.0.0.1:5672
listeners.ssl.default = 127.0.0.1:5671
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
ssl_options.cacertfile = $TLS/ca.pem
ssl_options.certfile = $TLS/server.pem
ssl_options.keyfile = $TLS/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
stomp.listeners.tcp.1 = 127.0.0.1:61613
stomp.listeners.ssl.1 = 127.0.0.1:61614
stomp.ssl_cert_login = true
EOF
}

start_rabbitmq() {
  local want changed=0
  want=$(rabbit_conf)
  if [ "$(cat "$RABBIT_CONF" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" | as_root tee "$RABBIT_CONF" >/dev/null
    changed=1
  fi
  # Add what loopback needs to rabbitmq-env.conf, keeping what is there
  # (a machine's own NODENAME, for one: rabbitmqctl must find the node).
  local line
  for line in NODENAME=rabbit@localhost NODE_IP_ADDRESS=127.0.0.1 'export ERL_EPMD_ADDRESS=127.0.0.1'; do
    local key=${line#export }
    key=${key%%=*}
    if ! grep -Eq "^(export )?$key=" "$RABBIT_ENV" 2>/dev/null; then
      printf '%s\n' "$line" | as_root tee -a "$RABBIT_ENV" >/dev/null
      changed=1
    fi
  done
  if ! grep -q rabbitmq_stomp /etc/rabbitmq/enabled_plugins 2>/dev/null ||
    ! grep -q rabbitmq_auth_mechanism_ssl /etc/rabbitmq/enabled_plugins 2>/dev/null; then
    as_root rabbitmq-plugins enable --offline rabbitmq_stomp rabbitmq_auth_mechanism_ssl >/dev/null
    changed=1
  fi
  if [ $changed -eq 0 ] && port_open 5672 && port_open 5671 && port_open 61613 && port_open 61614; then
    return 0
  fi
  if port_open 5672 || pgrep -f beam.smp.*rabbit >/dev/null; then
    log "restarting RabbitMQ so its configuration applies"
    as_root rabbitmqctl -q stop >/dev/null 2>&1 || true
    for _ in $(seq 100); do port_open 5672 || break; sleep 0.1; done
  fi
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port 61613 120 "RabbitMQ (STOMP)"
  as_root rabbitmqctl -q await_startup
  wait_port 5671 20 "RabbitMQ (AMQPS)"
  wait_port 61614 20 "RabbitMQ (STOMP+TLS)"
  # The client certificate logs in as its CN; that user must exist.
  as_root rabbitmqctl -q add_user bridgeclient "$(openssl rand -hex 16)" >/dev/null 2>&1 || true
  as_root rabbitmqctl -q set_permissions -p / bridgeclient '.*' '.*' '.*' >/dev/null
}

start_activemq() {
  if ! grep -q 'name="stomp"' "$AMQ/activemq.xml"; then
    as_root sed -i \
      's#\(<transportConnector name="openwire" uri="tcp://127.0.0.1:61616"/>\)#\1\n            <transportConnector name="stomp" uri="stomp://127.0.0.1:61623?transport.tcpNoDelay=true"/>#' \
      "$AMQ/activemq.xml"
    grep -q 'name="stomp"' "$AMQ/activemq.xml" || {
      log "could not add a STOMP connector to $AMQ/activemq.xml"
      exit 1
    }
  fi
  if [ ! -f "$AMQ/options" ]; then
    as_root mkdir -p /var/log/activemq
    as_root chown activemq:activemq /var/log/activemq
    sed 's#^ACTIVEMQ_OUT=.*#ACTIVEMQ_OUT="/var/log/activemq/$INSTANCE.log"#' \
      /usr/share/activemq/activemq-options | as_root tee "$AMQ/options" >/dev/null
  fi
  [ -e /etc/activemq/instances-enabled/main ] || as_root ln -sfn "$AMQ" /etc/activemq/instances-enabled/main
  as_root mkdir -p /var/lib/activemq/data
  as_root chown activemq:activemq /var/lib/activemq/data
  if port_open 61623 && port_open 61616; then
    return 0
  fi
  log "starting ActiveMQ"
  # A pid file left by a killed broker makes the init script refuse to start.
  pgrep -f 'java.*activemq' >/dev/null || as_root rm -f /var/run/activemq/main.pid
  as_root /etc/init.d/activemq start >/dev/null
  wait_port 61616 60 "ActiveMQ (OpenWire)"
  wait_port 61623 60 "ActiveMQ (STOMP)"
}

status() {
  local p rc=0
  for p in "${PORTS[@]}"; do
    if port_open "$p"; then echo "127.0.0.1:$p up"; else echo "127.0.0.1:$p DOWN"; rc=1; fi
  done
  return $rc
}

case "${1:-start}" in
start)
  install_packages
  make_pki
  start_rabbitmq
  start_activemq
  log "ready: RabbitMQ 5672/5671/61613/61614, ActiveMQ 61616/61623 on 127.0.0.1"
  ;;
stop)
  as_root rabbitmqctl -q stop >/dev/null 2>&1 || true
  as_root /etc/init.d/activemq stop >/dev/null 2>&1 || true
  ;;
status) status ;;
*)
  echo "usage: $0 [start|stop|status]" >&2
  exit 2
  ;;
esac
