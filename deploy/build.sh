#!/usr/bin/env bash
# Builds the kvnode image (deploy/Dockerfile): a static kvnode compiled on
# this machine with the version stamped in, in a FROM scratch image, so no
# image is pulled. Needs Go and a Docker engine.
#
#   deploy/build.sh                      # tags shelf/kvnode:VERSION and shelf/kvnode:latest
#   VERSION=v1.2.0 deploy/build.sh       # the version to stamp (default: git describe)
#   IMAGE=registry.office/shelf:v1.2.0 deploy/build.sh   # one tag of your choosing
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}"
COMMIT="$(git rev-parse HEAD 2>/dev/null || true)"
if [ -n "${IMAGE:-}" ]; then
  names=("$IMAGE")
else
  names=("shelf/kvnode:$VERSION" "shelf/kvnode:latest")
fi
tags=()
for n in "${names[@]}"; do tags+=(-t "$n"); done

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
pkg=github.com/shelfdb/shelf/internal/version
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X $pkg.Version=$VERSION -X $pkg.Commit=$COMMIT" \
  -o "$ctx/kvnode" ./cmd/kvnode
mkdir "$ctx/data"
cp deploy/Dockerfile "$ctx/Dockerfile"
# FROM scratch needs no pull; --pull=false keeps it that way.
docker build --pull=false -q --build-arg VERSION="$VERSION" "${tags[@]}" "$ctx"
echo "built ${names[*]} (kvnode $VERSION)" >&2
