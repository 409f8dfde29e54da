#!/usr/bin/env bash
# Installs what kubestrap's build, tests and demo need on a fresh Debian machine (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t apt_packages < <(grep -v '^\s*#' .ci/apt-packages | sed '/^\s*$/d')
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mapfile -t pip_packages < <(grep -v '^\s*#' .ci/pip-packages | sed '/^\s*$/d')
pip_missing=()
for p in "${pip_packages[@]}"; do
  python3 -m pip show "${p%%[=<>]*}" >/dev/null 2>&1 || pip_missing+=("$p")
done
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "[setup] installing Python packages: ${pip_missing[*]}"
  python3 -m pip install -q "${pip_missing[@]}"
  # pyenv only puts new console scripts (kubernetes-validate) on PATH after a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
