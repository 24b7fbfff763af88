#!/bin/bash
# Installs the Debian packages repo_stream builds, tests and benchmarks with.
# Quiet and quick when everything is already there.
set -euo pipefail

pkgs=(make gcc postgresql-15 postgresql-server-dev-15 libcbor-dev libsodium-dev
      libjansson-dev libipc-run-perl postgresql-15-wal2json postgresql-15-decoderbufs postgresql-15-cron
      rsync clang libclang-rt-14-dev postgresql-15-plproxy)
# Node.js and npm for the interop tests (any install already on PATH will do).
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
