#!/bin/sh
# A local signed apt repository in $1 with a test-double `netbird` (the fake CLI, $2) in three versions, so the
# pin has something to hold back. A throwaway ed25519 key signs Release; its public half is $1/public.key.
# The double's `status --json` prints the real agent's field names (management, signal, netbirdIp, fqdn, peers),
# which boma.mesh.netbird_info reads in converge (base's mesh check) and verify.
set -eu
repo=$1 fake=$2
work=$(mktemp -d)
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
mkdir -p "$repo/pool" "$repo/dists/stable/main/binary-amd64"
for version in 0.58.1 0.59.0 0.60.0; do
  pkg="$work/netbird_$version"
  mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system"
  # Debian has no `python` command without python-is-python3: point the double at python3.
  sed "1s|.*|#!/usr/bin/python3|" "$fake" > "$pkg/usr/bin/netbird"
  chmod 0755 "$pkg/usr/bin/netbird"
  printf '[Unit]\nDescription=NetBird (test double)\n[Service]\nExecStart=/usr/bin/netbird service run\n[Install]\nWantedBy=multi-user.target\n' \
    > "$pkg/lib/systemd/system/netbird.service"
  printf 'Package: netbird\nVersion: %s\nArchitecture: all\nMaintainer: boma.mesh tests <tests@boma.invalid>\nDepends: python3\nDescription: NetBird agent test double (records argv and env; status --json in the real field names)\n' \
    "$version" > "$pkg/DEBIAN/control"
  dpkg-deb --root-owner-group --build "$pkg" "$repo/pool/netbird_${version}_all.deb" >/dev/null
done
cd "$repo"
apt-ftparchive packages pool > dists/stable/main/binary-amd64/Packages
apt-ftparchive -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
  -o APT::FTPArchive::Release::Components=main -o APT::FTPArchive::Release::Architectures=amd64 \
  release dists/stable > "$work/Release"
mv "$work/Release" dists/stable/Release
gpg --batch --quiet --passphrase '' --quick-gen-key 'boma.mesh molecule repo <tests@boma.invalid>' ed25519 sign never
gpg --batch --quiet --armor --export > public.key
gpg --batch --quiet --yes --clearsign -o dists/stable/InRelease dists/stable/Release
gpg --batch --quiet --yes -abs -o dists/stable/Release.gpg dists/stable/Release
rm -rf "$work"
