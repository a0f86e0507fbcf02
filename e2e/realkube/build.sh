#!/usr/bin/env bash
# Builds a real Kubernetes control plane and node from their Go modules,
# through the Go module proxy, into DEST (./test.sh calls it once and keeps
# DEST under ~/.cache/gantry-test/kube):
#   etcd            go.etcd.io/etcd/server/v3      (its main.go is etcd's)
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#   kube-proxy, kubectl  k8s.io/kubernetes/cmd/...
#
# Neither installs with `go install module@version`: both go.mod files
# carry replace directives (etcd's to ../api, ../client/..., ../pkg;
# Kubernetes' to ./staging/src/k8s.io/*, which the module zip leaves out,
# since each staging directory is a module of its own). So the module
# source is fetched with `go mod download`, copied, and its replaces are
# dropped in favour of the published modules of the same release: for
# Kubernetes v1.X.Y the staging modules are published as k8s.io/*
# v0.X.Y (k8s.io/api, k8s.io/apiserver, ... — the same tree, tagged by
# the release tooling), for etcd v3.X.Y as go.etcd.io/etcd/*/v3 v3.X.Y.
# go.sum entries for them come from the checksum database as usual.
#
# It also gathers the CRDs the exported objects need into DEST/crds, each
# from its own module at a pinned version (the module zips carry them):
#   sigs.k8s.io/gateway-api                      config/crd/standard/
#   sigs.k8s.io/gateway-api-inference-extension  config/crd/bases/
#   sigs.k8s.io/lws                              config/crd/bases/ (LeaderWorkerSet)
# and the InferenceModelRewrite CRD kept beside this script (crds/: its
# module, llm-d-router, is not on the module proxy).
#
# Usage: build.sh DEST K8S_VERSION ETCD_VERSION GATEWAY_API GIE LWS
set -euo pipefail
dest=$1 k8s=$2 etcd=$3 gwapi=$4 gie=$5 lws=$6
here=$(cd "$(dirname "$0")" && pwd)
staging_version="v0.${k8s#v1.}"
mkdir -p "$dest"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
# GOWORK=off: the Kubernetes source ships a go.work that names the
# missing staging directories.
export GOWORK=off

fetch() { # module@version -> a writable copy of its source in $work/NAME
  local dir
  dir=$(cd "$work" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "go mod download $1 gave no source"; exit 1; }
  cp -r "$dir" "$work/$2" && chmod -R u+w "$work/$2"
}

# etcd
fetch "go.etcd.io/etcd/server/v3@$etcd" etcd
(
  cd "$work/etcd"
  # drop the replace block (and the FORBIDDEN_DEPENDENCY guard line)
  sed -i -e '/^replace (/,/^)/d' -e '/^replace /d' go.mod
  go mod edit -toolchain=none
  go mod edit \
    -require="go.etcd.io/etcd/api/v3@$etcd" \
    -require="go.etcd.io/etcd/client/pkg/v3@$etcd" \
    -require="go.etcd.io/etcd/client/v3@$etcd" \
    -require="go.etcd.io/etcd/pkg/v3@$etcd"
  go build -trimpath -o "$dest/etcd" .
)

# Kubernetes
fetch "k8s.io/kubernetes@$k8s" kubernetes
(
  cd "$work/kubernetes"
  rm -f go.work go.work.sum
  sed -i -e '/^replace (/,/^)/d' go.mod
  # every k8s.io/* staging module is required at v0.0.0 (the placeholder
  # the replaces resolved): point each at the published release
  for m in $(sed -n 's/^\t\(k8s\.io\/[a-z-]*\) v0\.0\.0$/\1/p' go.mod); do
    go mod edit -require="$m@$staging_version"
  done
  go mod edit -toolchain=none
  # version stamped into the binaries (what `hack/lib/version.sh` sets)
  v=k8s.io/component-base/version
  ldflags="-s -w -X $v.gitVersion=$k8s -X $v.gitMajor=1 -X $v.gitMinor=$(echo "$k8s" | cut -d. -f2)"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$k8s"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    go build -trimpath -ldflags "$ldflags" -o "$dest/$cmd" "./cmd/$cmd"
  done
)
# CRDs
mkdir -p "$dest/crds"
crds() { # module@version folder [file-glob]
  local dir
  dir=$(cd "$work" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "go mod download $1 gave no source"; exit 1; }
  cp "$dir/$2"/${3:-*.yaml} "$dest/crds/"
}
crds "sigs.k8s.io/gateway-api@$gwapi" config/crd/standard 'gateway.networking.k8s.io_*.yaml'
crds "sigs.k8s.io/gateway-api-inference-extension@$gie" config/crd/bases
crds "sigs.k8s.io/lws@$lws" config/crd/bases 'leaderworkerset.x-k8s.io_*.yaml'
cp "$here"/crds/*.yaml "$dest/crds/"
chmod u+w "$dest"/crds/*.yaml
echo "built: $(ls "$dest" | tr '\n' ' '); CRDs: $(ls "$dest/crds" | wc -l)"
