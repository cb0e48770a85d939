#!/usr/bin/env bash
# Build the local control plane's binaries (and helm, for the chart's tests) from the Go module
# proxy, once per machine, cached by version under
# ${TRTLLM_OP_CACHE:-~/.cache/trtllm-operator}/bin/.
# Prints the bin directory on its last line. Never downloads a prebuilt binary.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.34.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
COREDNS_VERSION=${COREDNS_VERSION:-1.14.7}
# Helm 3.19 is built against the k8s 1.34 client libraries, the local cluster's minor.
HELM_VERSION=${HELM_VERSION:-3.19.5}
CACHE=${TRTLLM_OP_CACHE:-$HOME/.cache/trtllm-operator}
TOOLS=$CACHE/src
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local

log() { printf '[build-binaries %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

build_k8s() {
  local out=$CACHE/bin/k8s-v$K8S_VERSION minor=${K8S_VERSION#1.}
  minor=${minor%%.*}
  if [[ -x $out/kube-apiserver && -x $out/kube-controller-manager && -x $out/kube-scheduler && -x $out/kubectl &&
        -x $out/kubelet && -x $out/kube-proxy ]]; then
    log "k8s v$K8S_VERSION cached in $out"; return
  fi
  log "Building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy v$K8S_VERSION (cold: 15-30 min on 2 cores)"
  local dir=$TOOLS/k8s-v$K8S_VERSION start=$SECONDS
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init local.test/k8s-bins >/dev/null 2>&1
  go mod edit -go=1.24 -godebug=default=go1.24
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print $1}' "$gomod" | sort -u |
    while read -r m; do go mod edit -replace="$m=$m@v0.$minor.${K8S_VERSION##*.}"; done
  go get "k8s.io/kubernetes@v$K8S_VERSION" >&2
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  mkdir -p "$out.tmp"
  CGO_ENABLED=0 go build -v -trimpath -ldflags "$ld" -o "$out.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy 2>&1 |
    awk '{n++} n%200==0 {printf "[build-binaries] k8s: %d packages compiled\n", n > "/dev/stderr"}'
  "$out.tmp/kube-apiserver" --version >&2
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "k8s built in $((SECONDS-start)) s"
}

build_etcd() {
  local out=$CACHE/bin/etcd-v$ETCD_VERSION
  [[ -x $out/etcd ]] && { log "etcd v$ETCD_VERSION cached in $out"; return; }
  log "Building etcd v$ETCD_VERSION"
  local dir=$TOOLS/etcd-v$ETCD_VERSION start=$SECONDS
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init local.test/etcd-bin >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
  mkdir -p "$out.tmp"
  CGO_ENABLED=0 go build -trimpath -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
  "$out.tmp/etcd" --version >&2
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "etcd built in $((SECONDS-start)) s"
}

build_kwok() {
  local out=$CACHE/bin/kwok-v$KWOK_VERSION
  [[ -x $out/kwok && -d $out/stages ]] && { log "kwok v$KWOK_VERSION cached in $out"; return; }
  log "Building kwok v$KWOK_VERSION"
  local dir=$TOOLS/kwok-v$KWOK_VERSION start=$SECONDS
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init local.test/kwok-bin >/dev/null 2>&1
  go get "sigs.k8s.io/kwok@v$KWOK_VERSION" >&2
  mkdir -p "$out.tmp"
  CGO_ENABLED=0 go build -trimpath -o "$out.tmp/kwok" sigs.k8s.io/kwok/cmd/kwok
  # The stage definitions ship inside the module; keep a reference copy next to the binary
  # (machine cache only, never committed).
  cp -r "$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage" "$out.tmp/stages"
  chmod -R u+w "$out.tmp/stages"
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "kwok built in $((SECONDS-start)) s"
}

build_coredns() {
  local out=$CACHE/bin/coredns-v$COREDNS_VERSION
  [[ -x $out/coredns ]] && { log "coredns v$COREDNS_VERSION cached in $out"; return; }
  log "Building coredns v$COREDNS_VERSION (cluster DNS of the real node)"
  local dir=$TOOLS/coredns-v$COREDNS_VERSION start=$SECONDS
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init local.test/coredns-bin >/dev/null 2>&1
  go get "github.com/coredns/coredns@v$COREDNS_VERSION" >&2
  mkdir -p "$out.tmp"
  CGO_ENABLED=0 go build -trimpath -o "$out.tmp/coredns" github.com/coredns/coredns
  "$out.tmp/coredns" -version >&2
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "coredns built in $((SECONDS-start)) s"
}

build_helm() {
  local out=$CACHE/bin/helm-v$HELM_VERSION
  [[ -x $out/helm ]] && { log "helm v$HELM_VERSION cached in $out"; return; }
  log "Building helm v$HELM_VERSION (the chart's lint, template and install tests; ~5 min cold)"
  local dir=$TOOLS/helm-v$HELM_VERSION start=$SECONDS
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init local.test/helm-bin >/dev/null 2>&1
  go get "helm.sh/helm/v3@v$HELM_VERSION" >&2
  # The version stamps helm's own Makefile sets: `helm version`, and the Kubernetes version
  # `helm lint` and `helm template` assume (Capabilities.KubeVersion) without a cluster.
  local kv major minor
  kv=$(go list -m -f '{{.Version}}' k8s.io/client-go)  # v0.34.2
  kv=${kv#v0.}; major=1; minor=${kv%%.*}
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  ld="$ld -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ld="$ld -X $p.k8sVersionMajor=$major -X $p.k8sVersionMinor=$minor"
  done
  mkdir -p "$out.tmp"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$out.tmp/helm" helm.sh/helm/v3/cmd/helm
  "$out.tmp/helm" version >&2
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "helm built in $((SECONDS-start)) s"
}

main() {
  local start=$SECONDS
  mkdir -p "$CACHE/bin" "$TOOLS"
  case "${1:-all}" in
    etcd) build_etcd ;;
    kwok) build_kwok ;;
    k8s) build_k8s ;;
    coredns) build_coredns ;;
    helm) build_helm ;;
    all) build_etcd; build_kwok; build_k8s; build_coredns; build_helm ;;
  esac
  log "All binaries ready in $((SECONDS-start)) s"
  echo "$CACHE/bin"
}

main "$@"
