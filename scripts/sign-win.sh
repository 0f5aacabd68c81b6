#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sign-win.sh BUILD_DIR OUT_DIR [CERT.pem KEY.pem]: the Windows release from a build/win64 tree:
# OUT_DIR/windows/ holds wfpbrokerd.exe, wfpbctl.exe, wfpb-relay.exe, wfpb.dll and wfpb.lib, and
# OUT_DIR/wfpbroker-VERSION-x64.msi is built from exactly those files. With a certificate and its
# key, each .exe and .dll is Authenticode-signed (osslsigncode, SHA-256) before the MSI is made,
# and then the MSI itself. WFPB_SIGN_TIMESTAMP=URL adds an RFC 3161 timestamp (needs network).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
cert=${3:-} key=${4:-}
version=$(sed -n 's/^project(wfpbroker VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
url=$(sed -n 's/^ *HOMEPAGE_URL "\([^"]*\)".*/\1/p' "$root/CMakeLists.txt")
IFS=. read -r major minor patch <<<"$version"
stage=$out/windows
rm -rf "$stage"
mkdir -p "$stage/service" "$stage/client" "$stage/include"
cp "$build/service/wfpbrokerd.exe" "$stage/service/"
cp "$build/client/wfpbctl.exe" "$build/client/wfpb-relay.exe" "$build/client/wfpb.dll" "$build/client/wfpb.lib" \
	"$stage/client/"
cp "$build/include/wfpb_version.h" "$stage/include/"

sign() {
	osslsigncode sign -certs "$cert" -key "$key" -h sha256 -n "wfpbroker $version" -i "$url" \
		${WFPB_SIGN_TIMESTAMP:+-ts "$WFPB_SIGN_TIMESTAMP"} -in "$1" -out "$1.signed" >/dev/null
	mv "$1.signed" "$1"
}
if [ -n "$cert" ]; then
	for f in "$stage"/service/*.exe "$stage"/client/*.exe "$stage"/client/*.dll; do sign "$f"; done
fi
msi=$out/wfpbroker-$version-x64.msi
(cd "$stage" && wixl -a x64 -D Version="$version" -D NextVersion="$major.$minor.$((patch + 1))" \
	-D Publisher=wfpbroker -D Url="$url" -D SourceDir="$(realpath --relative-to="$stage" "$root")" \
	-o "$msi" "$root/installer/wfpbroker.wxs" 2>/dev/null)
[ -n "$cert" ] && sign "$msi"
echo "$msi"
