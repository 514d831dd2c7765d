#!/bin/sh
# make deb: a Debian package of vipfarm, built with dpkg-deb. The binaries carry the Swift runtime (built with
# --static-swift-stdlib), so the package depends only on Debian's C libraries (found from the binaries, as
# dpkg-shlibdeps does) and nftables. Man pages come from the command definitions (swift-argument-parser's
# generate-manual), completions from the binaries themselves. Prints the package's path last.
set -eu
cd "$(dirname "$0")/.."
scratch=.build-deb
swift=${SWIFT:-swift}
for product in lbnode lbbench; do
    "$swift" build -c release --static-swift-stdlib --scratch-path "$scratch" --product "$product" >&2
done
"$swift" build -c release --scratch-path "$scratch" --product generate-manual >&2
build="$scratch/release"
manual="$scratch/manual"
rm -rf "$manual" && mkdir -p "$manual"
for binary in lbnode lbbench; do "$build/generate-manual" "$build/$binary" --output-directory "$manual" --multi-page >&2; done

arch=$(dpkg --print-architecture)
version="0.1.0+git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short HEAD)"
stage="$scratch/stage"
rm -rf "$stage"
scripts/install.sh --destdir "$stage" --prefix /usr --unitdir /lib/systemd/system --build "$build" --manual "$manual" >&2
rm -f "$stage"/usr/bin/*.so  # not needed: the runtime is linked in
gzip -9n "$stage"/usr/share/man/man1/*.1 "$stage"/usr/share/man/man5/*.5

# The packages that hold the shared libraries the binaries need directly (their NEEDED entries), as
# dpkg-shlibdeps finds them.
depends=$(for binary in "$stage"/usr/bin/lbnode "$stage"/usr/bin/lbbench; do
        for name in $(readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
            ldd "$binary" | awk -v name="$name" '$1 == name && $3 ~ /^\// { print $3 }'
        done
    done | sort -u | while read -r library; do
        dpkg -S "$(readlink -f "$library")" 2>/dev/null || dpkg -S "$library" 2>/dev/null || true
    done | cut -d: -f1 | sort -u)
depends=$(printf '%s\nnftables\n' "$depends" | grep -v '^$' | sort -u | paste -sd, - | sed 's/,/, /g')

mkdir -p "$stage/DEBIAN"
installed_size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: vipfarm
Version: $version
Architecture: $arch
Maintainer: vipfarm developers <root@localhost>
Installed-Size: $installed_size
Depends: $depends
Recommends: iproute2
Section: net
Priority: optional
Description: software load balancer for a farm of Linux servers sharing one virtual IP
 Every server runs lbnode: client frames for the VIP reach every server (or a director), each keeps the
 clients whose hash bucket it owns and injects them into a TAP device that holds the VIP, so the unmodified
 application answers. Heartbeats move a dead server's buckets to the survivors in tens of milliseconds.
 No switch or router is configured. lbbench measures failover time and throughput.
CONTROL
echo /etc/vipfarm/example.yaml > "$stage/DEBIAN/conffiles"
for script in postinst postrm; do
    cat > "$stage/DEBIAN/$script" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
SCRIPT
    chmod 0755 "$stage/DEBIAN/$script"
done
package="$scratch/vipfarm_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$package" >&2
echo "$package"
