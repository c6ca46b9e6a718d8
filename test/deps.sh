#!/usr/bin/env bash
# Installs what building gofedmsg needs and is missing: libzmq (Debian's
# libzmq3-dev, found through pkg-config) and a C compiler for cgo. With the
# argument "test", also what the tests need: openssl (signatures checked
# independently), docker-compose (validates docker-compose.yml without
# an engine) and python3 (`fedmsg config convert` runs fedmsg.d/*.py).
# The brokers are test/brokers.sh's. Idempotent.
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists libzmq 2>/dev/null || missing+=(libzmq3-dev)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if [ "${1:-}" = test ]; then
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "deps: missing ${missing[*]} and not root (no sudo): install them with apt-get" >&2
    exit 1
  fi
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
pkg-config --exists libzmq
