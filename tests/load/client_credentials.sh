#!/usr/bin/env bash
# Measures client_credentials tokens per second against a release build on loopback.
# Usage: tests/load/client_credentials.sh [seconds] [connections]
# Needs wrk (Debian: apt-get install wrk). Traffic goes to 127.0.0.1 only, for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${1:-10}"
connections="${2:-32}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release -q -p sigil-server
sigil="$PWD/target/release/sigil"
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
export SIGIL_DATABASE_URL="sqlite://$work/sigil.db" SIGIL_KEYS_DIR="$work/keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
creds=$("$sigil" client add --name bench --json)
id=$(echo "$creds" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
secret=$(echo "$creds" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
RUST_LOG=warn SIGIL_ADMIN_PASSWORD=bench-admin-password "$sigil" serve --bind "127.0.0.1:$port" --issuer "http://127.0.0.1:$port" >"$work/out.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
export SIGIL_BASIC=$(printf '%s:%s' "$id" "$secret" | base64 -w0)
echo "== openssl speed rsa2048 (signing ceiling, $(nproc) processes)"
openssl speed -seconds 3 -multi "$(nproc)" rsa2048 2>/dev/null | grep '^rsa 2048'
echo "== client_credentials: wrk -t2 -c$connections -d${duration}s"
wrk -t2 -c"$connections" -d"${duration}s" --latency -s tests/load/client_credentials.lua "http://127.0.0.1:$port/token"
echo "== peak RSS of sigil: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"
