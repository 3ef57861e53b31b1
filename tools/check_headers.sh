#!/bin/sh
# check_headers.sh - every header compiles on its own (git's hdr-check).
set -eu
fail=0
for h in $(git ls-files 'src/*.h'); do
    case "$h" in src/engine/cuda/*) continue ;; esac
    if ! printf '#include "%s"\n' "${h#src/}" | gcc -std=c11 -D_POSIX_C_SOURCE=200809L -Isrc \
        $(pkg-config --cflags cbc libzmq libmicrohttpd libcjson inih 2>/dev/null) \
        -Wall -Werror -fsyntax-only -x c - 2>/tmp/hx-hdr.log; then
        echo "check-headers: $h does not stand alone:"; cat /tmp/hx-hdr.log; fail=1
    fi
done
[ $fail -eq 0 ] && echo "headers: ok"
exit $fail
