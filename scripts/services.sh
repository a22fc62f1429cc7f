#!/usr/bin/env bash
# Starts the backing services the test suite may use, if they are installed but not running.
# Each is checked on its standard loopback port first; nothing is touched when it is up.
# On machines without a service installed, it is skipped (tests that need it say so).
set -u

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local name=$1 port=$2; shift 2
  if up "$port"; then return 0; fi
  if ! command -v "${1%% *}" >/dev/null 2>&1 && [ ! -x "${1%% *}" ]; then
    echo "services: $name is not installed; skipping" >&2
    return 0
  fi
  echo "services: starting $name" >&2
  bash -c "$*" >/dev/null 2>&1 || echo "services: could not start $name" >&2
  for _ in $(seq 1 50); do up "$port" && return 0; sleep 0.2; done
  echo "services: $name did not come up on port $port" >&2
}

start postgresql 5432 "pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start"
start redis 6379 "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
start nats 4222 "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"
start rabbitmq 5672 "rabbitmq-server -detached"
start mosquitto 1883 "mosquitto -d -c /etc/mosquitto/mosquitto.conf"
exit 0
