#!/bin/sh
# make deb-check (CI): the package installs, its unit passes `systemd-analyze verify` (or starts a node where systemd
# runs), lbnode works from it, and it removes cleanly, leaving nothing but what the operator made.
set -eu
cd "$(dirname "$0")/.."
package=$(scripts/build-deb.sh | tail -n 1)
echo "deb-check: installing $package"
dpkg -i "$package" || { apt-get update && apt-get install -y -f; }
dpkg -s vipfarm | grep -q '^Status: install ok installed'
/usr/bin/lbnode --version
key=$(mktemp -u /tmp/vipfarm-deb-key.XXXXXX)
/usr/bin/lbnode keygen "$key"
[ "$(stat -c %a "$key")" = 600 ] || { echo "deb-check: keygen made mode $(stat -c %a "$key")" >&2; exit 1; }
rm -f "$key"
/usr/bin/lbnode check --help >/dev/null
man -w lbnode.run >/dev/null 2>&1 || [ -e /usr/share/man/man1/lbnode.run.1.gz ]
[ -e /usr/share/man/man5/lbnode.yaml.5.gz ] && [ -e /usr/share/doc/vipfarm/operations.md ]
# No page points at the source tree: the documents they name are installed.
if zcat /usr/share/man/man1/lbnode*.1.gz /usr/share/man/man1/lbbench*.1.gz /usr/share/man/man5/lbnode.yaml.5.gz | grep -n 'docs/'; then
    echo "deb-check: a man page points at the repository's docs/ (name the installed file or page)" >&2; exit 1
fi
[ -e /usr/share/bash-completion/completions/lbnode ]
# The unit, with an instance and its configuration (the example, with its documentation addresses).
config_made=""
if [ ! -e /etc/vipfarm/deb-check.yaml ]; then cp /etc/vipfarm/example.yaml /etc/vipfarm/deb-check.yaml; config_made=1; fi
if [ -d /run/systemd/system ]; then
    systemd-analyze verify /lib/systemd/system/vipfarm@.service
    echo "deb-check: systemd runs here; the unit is verified (starting a node needs a real farm interface)"
else
    unit_dir=$(mktemp -d /tmp/vipfarm-deb-units.XXXXXX)
    cp /lib/systemd/system/vipfarm@.service "$unit_dir/vipfarm@deb-check.service"
    SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$unit_dir/vipfarm@deb-check.service"
    rm -rf "$unit_dir"
    echo "deb-check: no systemd running here: systemd-analyze verify passed"
fi
# The unit's hardening: systemd's exposure score (0 safe, 10 unsafe) stays at or below 4.0 (docs/operations.md).
unit_dir=$(mktemp -d /tmp/vipfarm-deb-units.XXXXXX)
cp /lib/systemd/system/vipfarm@.service "$unit_dir/vipfarm@deb-check.service"
systemd-analyze security --offline=true "$unit_dir/vipfarm@deb-check.service" | tail -n 1
systemd-analyze security --offline=true --threshold=40 "$unit_dir/vipfarm@deb-check.service" >/dev/null || {
    echo "deb-check: the unit's exposure rose above 4.0 (systemd-analyze security)" >&2; rm -rf "$unit_dir"; exit 1; }
rm -rf "$unit_dir"
[ -n "$config_made" ] && rm -f /etc/vipfarm/deb-check.yaml
dpkg -r vipfarm
for path in /usr/bin/lbnode /usr/bin/lbbench /lib/systemd/system/vipfarm@.service /usr/share/man/man1/lbnode.1.gz \
    /usr/share/man/man5/lbnode.yaml.5.gz /usr/share/doc/vipfarm/operations.md; do
    [ ! -e "$path" ] || { echo "deb-check: $path is still there after removal" >&2; exit 1; }
done
dpkg --purge vipfarm >/dev/null
[ ! -e /etc/vipfarm/example.yaml ] || { echo "deb-check: the example configuration survived a purge" >&2; exit 1; }
echo "deb-check: installed, verified and removed cleanly"
