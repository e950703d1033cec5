#!/bin/sh
# Build the service-recovery image with its version label taken from pyproject.toml.
#   deploy/build-image.sh                  -> service-recovery:<version>
#   IMAGE=registry.example.com/service-recovery deploy/build-image.sh --push   (extra args go to docker build)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml" | head -n 1)
[ -n "$version" ] || { echo "no version in $root/pyproject.toml" >&2; exit 1; }
revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
image=${IMAGE:-service-recovery}
exec docker build \
  --file "$root/deploy/Dockerfile" \
  --build-arg VERSION="$version" \
  --build-arg REVISION="$revision" \
  --tag "$image:$version" \
  "$@" "$root"
