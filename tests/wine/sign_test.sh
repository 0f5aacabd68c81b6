#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sign_test.sh SRC_DIR BUILD_DIR WORKDIR: `./dev.sh package --sign` as a vendor runs it, with a
# throwaway code-signing certificate made here: every .exe, the .dll and the MSI verify with
# `osslsigncode verify` against that certificate; an unsigned build does not; a signed file
# changed by one byte does not. Ends with "N passed, M failed".
set -u
src=$1 build=$2 work=$3
. "$src/tests/check.sh"
work=$(workdir "$work")

openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 2 -subj "/CN=wfpbroker test signer" \
	-addext "extendedKeyUsage=codeSigning" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
check "a throwaway code-signing certificate" test -s "$work/cert.pem" -a -s "$work/key.pem"
check "sign-win.sh signs the binaries and builds and signs the MSI" eval \
	"'$src/scripts/sign-win.sh' '$build' '$work/signed' '$work/cert.pem' '$work/key.pem' >'$work/sign.out' 2>&1 ||
	 { cat '$work/sign.out'; false; }"
verify() { osslsigncode verify -CAfile "$work/cert.pem" -in "$1" >"$work/verify.out" 2>&1 &&
	grep -q "Signature verification: ok" "$work/verify.out"; }
msi=$(ls "$work"/signed/wfpbroker-*-x64.msi 2>/dev/null | head -n 1)
for f in "$work"/signed/windows/service/wfpbrokerd.exe "$work"/signed/windows/client/wfpbctl.exe \
	"$work"/signed/windows/client/wfpb-relay.exe "$work"/signed/windows/client/wfpb.dll "$msi"; do
	check "$(basename "$f"): the signature verifies" verify "$f"
done
check "the MSI carries the signed programs" eval "msiextract -C '$work/x' '$msi' >/dev/null 2>&1 &&
	verify \"\$(find '$work/x' -name wfpbrokerd.exe | head -n 1)\""
"$src/scripts/sign-win.sh" "$build" "$work/unsigned" >/dev/null 2>&1
check "an unsigned build does not verify" eval "! verify '$work/unsigned/windows/client/wfpb.dll'"
cp "$work/signed/windows/client/wfpbctl.exe" "$work/tampered.exe"
printf 'X' | dd of="$work/tampered.exe" bs=1 seek=4096 conv=notrunc 2>/dev/null
check "a signed file changed by one byte does not verify" eval "! verify '$work/tampered.exe'"
summary
