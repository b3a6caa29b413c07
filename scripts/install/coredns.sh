#!/usr/bin/env bash
# CoreDNS for the `coredns` tests: built from the Go module proxy with `go install`, once per
# version, into $HEADLESS_CLIENT_CACHE/coredns/<version>/coredns (outside the clone). Later runs
# find the binary and exit at once. Go's module and build caches live in the same cache folder,
# so a rebuild after a version bump reuses what it can.
#   scripts/install/coredns.sh            build (or reuse) the pinned version, print the binary path
#   COREDNS_VERSION=v1.14.7 scripts/...   another release
# tests/integration/coredns.py reads the pinned version from the line below.
set -euo pipefail
VERSION=${COREDNS_VERSION:-v1.15.0}
CACHE=${HEADLESS_CLIENT_CACHE:-$HOME/.cache/headless-client}
dest=$CACHE/coredns/$VERSION
binary=$dest/coredns

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  PATH="/usr/local/go/bin:$PATH"  # the official tarball's place, often not on PATH
fi
if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
error: CoreDNS $VERSION is not built and the Go toolchain ('go') is not on PATH.
  Install Go 1.25 or newer (the tests build CoreDNS with 'go install' from the Go module proxy),
  or run the suite without the CoreDNS tests: scripts/test --python-only
MSG
  exit 1
fi

mkdir -p "$dest"
# One build at a time per cache (scripts/test may run beside another checkout's).
exec 9>"$CACHE/coredns/.lock"
flock 9
if [ -x "$binary" ]; then echo "$binary"; exit 0; fi

export GOPATH="$CACHE/go"
export GOMODCACHE="$CACHE/go/pkg/mod"
export GOCACHE="$CACHE/go/build"
export GOFLAGS="-modcacherw -buildvcs=false"
export CGO_ENABLED=0
staging=$(mktemp -d "$dest/.build.XXXXXX")
trap 'rm -rf "$staging"' EXIT
echo "== building CoreDNS $VERSION with $(go version | cut -d' ' -f3) (first time only; a few minutes)" >&2
start=$(date +%s)
GOBIN="$staging" go install "github.com/coredns/coredns@$VERSION"
mv "$staging/coredns" "$binary"
echo "== CoreDNS $VERSION built in $(( $(date +%s) - start )) s: $binary" >&2
"$binary" -version >&2
echo "$binary"
