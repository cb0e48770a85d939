#!/usr/bin/env bash
# Install what the local cluster's real node and its images need (Debian packages), idempotently:
# containerd, runc and the CNI plugins (the node), buildah and mmdebstrap (images without Docker or a
# registry), iptables/iproute2 (kube-proxy, the bridge), gcc + libc for the static pause binary.
# containerd's own system service is kept from starting: the node runs its own instance (hack/node.py).
# Not root: prints why and exits 0 (the cluster then has the KWOK fleet only).
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins buildah mmdebstrap iptables iproute2 gcc libc6-dev
          util-linux mount)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "real-node packages already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "not root: cannot install ${missing[*]}; the local cluster will have no real node"
  exit 0
fi

# policy-rc.d exit 101 tells invoke-rc.d not to start services during this install.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$POLICY"
  chmod +x "$POLICY"
  CREATED_POLICY=1
fi
cleanup() { if [ "$CREATED_POLICY" = 1 ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
start=$SECONDS
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed ${missing[*]} in $((SECONDS - start)) s"
