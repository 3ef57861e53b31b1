#!/bin/sh
# deps.sh - install the Debian packages helix needs, idempotently. Called by `make test`,
# `make run`, `make check` and `make bench`. Fast no-op when everything is installed.
set -eu

PKGS="gcc make pkg-config coinor-libcbc-dev libglpk-dev libzmq3-dev libmicrohttpd-dev \
libcjson-dev libinih-dev libopenblas-dev clang libclang-rt-14-dev clang-format cppcheck \
gnuplot-nox curl jq chromium"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "deps: error: need root (or sudo) to apt-get install:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: done" >&2
