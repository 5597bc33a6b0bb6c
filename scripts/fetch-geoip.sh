#!/usr/bin/env bash
# Fetches a free IP-to-country database for `[geo] mmdb_path`: the npm package
# @ip-location-db/geo-whois-asn-country-mmdb (package licence CC0-1.0; its data comes from the
# RIRs' WHOIS and ASN statistics, CC BY 4.0 by the NRO: attribute nro.net). IPv4 and IPv6,
# country only.
#
#   scripts/fetch-geoip.sh [DEST_DIR]    # default ./geoip
#
# Writes DEST_DIR/geo-whois-asn-country.mmdb (and the NRO licence beside it) and prints the
# file's path on stdout. Idempotent: a file already there is kept (delete it to refresh).
# Only the npm registry is contacted (NPM_REGISTRY, default https://registry.npmjs.org).
set -euo pipefail

PACKAGE=@ip-location-db/geo-whois-asn-country-mmdb
FILE=geo-whois-asn-country.mmdb
REGISTRY=${NPM_REGISTRY:-https://registry.npmjs.org}
DEST=${1:-geoip}

log() { printf '[fetch-geoip] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

mkdir -p "$DEST"
target="$DEST/$FILE"
if [ -s "$target" ]; then
    log "$target is there already"
    echo "$target"
    exit 0
fi

command -v curl >/dev/null 2>&1 || die "curl is needed"
command -v tar >/dev/null 2>&1 || die "tar is needed"

# dist.tarball and dist.shasum of the latest version, from the registry's JSON (no jq needed).
meta=$(curl -fsS --max-time 60 "$REGISTRY/$PACKAGE/latest") || die "cannot read $REGISTRY/$PACKAGE/latest"
field() { printf '%s' "$meta" | sed 's/[{},]/\n/g' | sed -n "s/^ *\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n 1; }
tarball=$(field tarball)
shasum=$(field shasum)
version=$(field version)
[ -n "$tarball" ] || die "no dist.tarball in the registry's answer for $PACKAGE"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-geoip.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "downloading $PACKAGE $version"
curl -fsS --max-time 600 -o "$tmp/pkg.tgz" "$tarball" || die "cannot download $tarball"
if [ -n "$shasum" ] && command -v sha1sum >/dev/null 2>&1; then
    got=$(sha1sum "$tmp/pkg.tgz" | cut -d' ' -f1)
    [ "$got" = "$shasum" ] || die "checksum mismatch for $tarball: sha1 $got, registry says $shasum"
fi
tar -xzf "$tmp/pkg.tgz" -C "$tmp" "package/$FILE" || die "no package/$FILE in $tarball"
tar -xzf "$tmp/pkg.tgz" -C "$tmp" package/NRO_LICENSE 2>/dev/null && cp "$tmp/package/NRO_LICENSE" "$DEST/NRO_LICENSE"
[ -s "$tmp/package/$FILE" ] || die "package/$FILE in $tarball is empty"
# Move into place in one step: a reader never sees half a file.
mv "$tmp/package/$FILE" "$target.part"
mv "$target.part" "$target"
log "wrote $target ($(wc -c <"$target") bytes)"
echo "$target"
