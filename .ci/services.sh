#!/usr/bin/env bash
# Start PostgreSQL, RabbitMQ and Redis when they are not running, install memcached when missing; idempotent.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  echo "service on port $1 did not come up" >&2
  return 1
}

if ! port_open 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_port 5432
fi

if ! port_open 5672; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port 5672
fi
if ! port_open 6379; then
  echo "starting Redis"
  # Tests use databases 1-15 with key prefixes of their own; nothing is persisted.
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
  wait_port 6379
fi
# The Memcached cache backend's tests start a memcached of their own; they need its binary.
if ! command -v memcached >/dev/null; then
  echo "installing memcached"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y memcached || { apt-get update && apt-get install -y memcached; }
fi
echo "PostgreSQL, RabbitMQ and Redis are up; memcached is installed"
