#!/usr/bin/env bash
# Builds the container image `mainstay:latest` (or $MAINSTAY_IMAGE) from this checkout: the
# release binary, plus the shared libraries it links (from this machine), in an image FROM
# scratch. Nothing is pulled; a machine with Docker needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mainstay-target}"
image="${MAINSTAY_IMAGE:-mainstay:latest}"
scripts/setup.sh
if ! command -v docker >/dev/null; then
  echo "build-image: docker is not installed" >&2
  exit 1
fi
# `docker compose up` needs a compose tool: the v2 plugin, or Debian's docker-compose.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends docker-compose
fi
scripts/build.sh
bin="$CARGO_TARGET_DIR/release/mainstay"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/rootfs"
mkdir -p "$root/etc" "$root/tmp" "$root/var/lib/mainstay"
chmod 1777 "$root/tmp"
# Without its debug information (RocksDB's alone is hundreds of megabytes); symbols stay.
strip --strip-debug -o "$root/mainstay" "$bin"
# The dynamic loader and every library the binary links, at the paths the binary asks for.
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
  cp --parents -L "$lib" "$root"
done
# Name lookup of the other members (compose service names) through Docker's DNS.
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
printf 'root:x:0:0:root:/:/mainstay\n' > "$root/etc/passwd"
cp docker/Dockerfile "$stage/Dockerfile"
docker build --quiet --tag "$image" "$stage" >/dev/null
echo "built $image: $(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
