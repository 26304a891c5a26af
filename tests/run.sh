#!/usr/bin/env bash
# Runs every test of the project: unit, real-kernel and end-to-end (real binaries, real kubectl).
# Needs root on Linux: the tests create network namespaces, bridges, routes, mounts and cgroups.
# Installs the system packages it needs when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: run as root (the tests create network namespaces, mounts and cgroups)" >&2
  exit 1
fi

missing=()
command -v ip >/dev/null || missing+=(iproute2)
# A static busybox builds the demo images; the registry serves images to pull tests.
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing+=(busybox-static)
command -v docker-registry >/dev/null || missing+=(docker-registry)
# Node agents program Service rules with nft.
command -v nft >/dev/null || missing+=(nftables)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v kubectl >/dev/null; then
  echo "tests/run.sh: kubectl is needed on PATH for the end-to-end tests" >&2
  exit 1
fi

cargo build --workspace --bins --locked
cargo test --workspace --locked
