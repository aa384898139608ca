#!/usr/bin/env bash
# Install everything vrlab needs on a fresh Debian machine (as root), then run the main job
# (`./bootstrap.sh run`) or the whole test suite (`./bootstrap.sh test`).
# System packages come from apt-get, Python packages go into ./.venv: nothing relies on what
# happens to be installed already.
set -euo pipefail
cd "$(dirname "$0")"

usage() { echo "usage: $0 run [vrlab reproduce options] | test [pytest options]" >&2; exit 2; }
[ $# -ge 1 ] || usage
what=$1; shift

if [ "$(id -u)" -ne 0 ]; then
  echo "vrlab builds network namespaces and needs root: sudo $0 $what $*" >&2
  exit 77
fi

# iproute2: `ip netns` paths; nftables/libnftables1: the sink's counters; netsniff-ng: trafgen,
# the reference generator of bench/generator.py; bird2: routing daemons for guest control planes;
# iputils-ping: `vrlab exec SITE -- ping`, in the docs and the platform's tests;
# clang/libbpf-dev/libbpf1: the XDP live-frames generator (vrlab.traffic.xdp) compiles its BPF
# program with clang against libbpf's headers at first use, and loads it through libbpf;
# xdp-tools: xdp-trafficgen, the XDP reference generator of bench/generator.py (where it cannot
# load, the bench says why and reports it unavailable); openssh-server: the sshd each simulated
# host of the multi-host tests runs in its own namespaces (vrlab starts it there itself);
# ethtool: the tests read offload settings with it, apart from the netlink vrlab sets them with.
APT_PACKAGES=(python3 python3-venv iproute2 nftables libnftables1 netsniff-ng bird2 iputils-ping
              clang libbpf-dev libbpf1 xdp-tools openssh-server ethtool)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  apt-get update -qq
  # Installing a daemon's package (openssh-server, bird2) starts its system service; vrlab runs
  # its own instances in namespaces and needs none listening on the host, so services stay down
  # during the install (Debian's policy-rc.d; one already there is left as it is).
  policy=/usr/sbin/policy-rc.d
  ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && ours=1
  fi
  rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || rc=$?
  [ "$ours" = 1 ] && rm -f "$policy"
  [ "$rc" = 0 ] || exit "$rc"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
echo "== pip install -e .[dev] into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[dev]"

case "$what" in
  run)
    exec .venv/bin/vrlab reproduce "$@"
    ;;
  test)
    exec .venv/bin/python -m pytest "$@"
    ;;
  *) usage ;;
esac
