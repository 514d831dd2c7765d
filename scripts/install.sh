#!/bin/sh
# Installs vipfarm from a release build: the binaries, the systemd unit, an example configuration, man pages and
# shell completions (generated from the command definitions).
#   scripts/install.sh [--destdir DIR] [--prefix /usr/local] [--unitdir /etc/systemd/system] [--build .build/release]
#                      [--manual DIR]
# --destdir stages everything under DIR (for a package); without it the files go to the live system.
set -eu
destdir=""; prefix=/usr/local; unitdir=/etc/systemd/system; build=.build/release; manual=""
while [ $# -gt 0 ]; do
    case "$1" in
        --destdir) destdir="$2"; shift 2 ;;
        --prefix) prefix="$2"; shift 2 ;;
        --unitdir) unitdir="$2"; shift 2 ;;
        --build) build="$2"; shift 2 ;;
        --manual) manual="$2"; shift 2 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for binary in lbnode lbbench; do
    [ -x "$build/$binary" ] || { echo "install.sh: $build/$binary is missing: build first (make release)" >&2; exit 1; }
done
bindir="$prefix/bin"
install -d "$destdir$bindir" "$destdir$unitdir" "$destdir/etc/vipfarm" "$destdir$prefix/share/man/man1" \
    "$destdir$prefix/share/man/man5" "$destdir$prefix/share/doc/vipfarm" \
    "$destdir$prefix/share/bash-completion/completions" "$destdir$prefix/share/zsh/vendor-completions" \
    "$destdir$prefix/share/fish/vendor_completions.d"
install -m 0755 "$build/lbnode" "$build/lbbench" "$destdir$bindir/"
# The runtime libraries of a build without --static-swift-stdlib sit beside the binaries.
for library in "$build"/*.so; do [ -e "$library" ] && install -m 0644 "$library" "$destdir$bindir/"; done
sed "s|@BINDIR@|$bindir|g" packaging/vipfarm@.service.in > "$destdir$unitdir/vipfarm@.service"
chmod 0644 "$destdir$unitdir/vipfarm@.service"
chmod 0755 "$destdir/etc/vipfarm"
[ -e "$destdir/etc/vipfarm/example.yaml" ] || install -m 0644 packaging/example.yaml "$destdir/etc/vipfarm/example.yaml"
for binary in lbnode lbbench; do
    "$build/$binary" --generate-completion-script bash > "$destdir$prefix/share/bash-completion/completions/$binary"
    "$build/$binary" --generate-completion-script zsh > "$destdir$prefix/share/zsh/vendor-completions/_$binary"
    "$build/$binary" --generate-completion-script fish > "$destdir$prefix/share/fish/vendor_completions.d/$binary.fish"
done
# The configuration's page, and the operator's documentation the pages refer to.
install -m 0644 packaging/lbnode.yaml.5 "$destdir$prefix/share/man/man5/"
install -m 0644 README.md docs/*.md "$destdir$prefix/share/doc/vipfarm/"
if [ -n "$manual" ]; then
    for page in "$manual"/*.1; do install -m 0644 "$page" "$destdir$prefix/share/man/man1/"; done
fi
echo "installed vipfarm under ${destdir:-/}$prefix (unit: $unitdir/vipfarm@.service)"
