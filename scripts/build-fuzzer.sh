#!/bin/sh
# Builds lbnode for libFuzzer (-sanitize=fuzzer,address, -DFUZZING: its entry is libFuzzer's driver, see
# Sources/lbnode/FuzzTarget.swift) into .build-fuzz, and prints the binary's path.
#
# SwiftPM links with gold, which stops with an internal error on this binary; the same link with lld (shipped with
# the Swift toolchain) works, so when SwiftPM's link fails the script runs SwiftPM's own link command with lld.
set -eu
cd "$(dirname "$0")/.."
OUT=.build-fuzz
mkdir -p "$OUT"
FLAGS="-c release --product lbnode --build-path $OUT -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING"
# shellcheck disable=SC2086
BINARY=$(swift build $FLAGS --show-bin-path)/lbnode
# shellcheck disable=SC2086
if ! swift build $FLAGS >"$OUT/build.log" 2>&1; then
    # shellcheck disable=SC2086
    swift build $FLAGS -v 2>&1 | grep -- '-emit-executable' | grep -- "-o [^ ]*/release/lbnode " | tail -1 >"$OUT/link.sh" || true
    if [ ! -s "$OUT/link.sh" ]; then
        cat "$OUT/build.log" >&2
        echo "build-fuzzer: the build failed (above)" >&2
        exit 1
    fi
    sed -i 's/$/ -use-ld=lld/' "$OUT/link.sh"
    sh "$OUT/link.sh" 2>&1 | grep -v 'Cannot export local symbol' >&2 || true
fi
[ -x "$BINARY" ] || { echo "build-fuzzer: no $BINARY" >&2; exit 1; }
echo "$BINARY"
