#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# package-deb.sh OUTDIR: builds the Debian packages wfpbroker, libwfpb0 and libwfpb-dev
# (with their -dbgsym) from this tree with debhelper (installer/linux/debian), into OUTDIR.
# The version is the CMake project version; the changelog entry is made from it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$out/src
rm -rf "$src" "$out"/*.deb "$out"/*.ddeb "$out"/*.buildinfo "$out"/*.changes
mkdir -p "$src"
tar -C "$root" --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -
cp -a "$root/installer/linux/debian" "$src/debian"
cp "$root/installer/linux/wfpbroker.sysusers" "$src/debian/wfpbroker.sysusers"
cp "$root/installer/linux/wfpbroker.tmpfiles" "$src/debian/wfpbroker.tmpfiles"
version=$(sed -n 's/^project(wfpbroker VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
[ -n "$version" ] || { echo "package-deb.sh: no project version in CMakeLists.txt" >&2; exit 1; }
when=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}
cat >"$src/debian/changelog" <<CHANGELOG
wfpbroker ($version) unstable; urgency=medium

  * wfpbroker $version.

 -- wfpbroker maintainers <maintainers@wfpbroker.invalid>  $(LC_ALL=C date -R -u -d "@$when")
CHANGELOG
(cd "$src" && SOURCE_DATE_EPOCH=$when dpkg-buildpackage -b -us -uc -j"$(nproc)" >"$out/build.log" 2>&1) || {
	tail -n 40 "$out/build.log" >&2
	exit 1
}
ls "$out"/*.deb
