#!/usr/bin/env bash
# The project's benchmarks, each side by side with a peer in the same run (ratios printed).
#   bash tests/bench.sh api      # API creates/s, latency, watch delivery vs etcd
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-api}"
if [ "$what" = api ] && ! command -v etcd >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
  # Debian starts a system etcd on the default ports; the benchmark runs its own.
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
cargo build --release --workspace --bins --locked
exec ./target/release/bench "$@"
