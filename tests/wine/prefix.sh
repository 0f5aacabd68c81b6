#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# prefix.sh setup|shutdown WINESERVER: creates the run's Wine prefix once and
# keeps its wineserver alive for the run; shutdown stops every Wine process of
# the prefix so nothing outlives the test run.
set -eu
cmd=$1
wineserver=$2
: "${WINEPREFIX:?}"
case "$cmd" in
setup)
	if [ ! -d "$WINEPREFIX/drive_c/windows" ]; then
		mkdir -p "$WINEPREFIX"
		wineboot -i </dev/null >/dev/null 2>&1
		# Let that first server and its services.exe end before the persistent one starts:
		# otherwise the wineboot below starts a second services.exe beside the first, and
		# the two SCMs answer alternately, each with its own idea of which services exist.
		"$wineserver" -w 2>/dev/null || true
	fi
	# Persistent server for the whole run; its stdio must not hold ctest's pipes open.
	"$wineserver" -p </dev/null >/dev/null 2>&1 || true
	# Start Wine's own services now, detached from ctest's pipes; a test that
	# started them would hand them its output pipe and ctest would wait forever.
	wineboot </dev/null >/dev/null 2>&1
	test -d "$WINEPREFIX/drive_c/windows"
	echo "wine prefix ready: $WINEPREFIX"
	;;
shutdown)
	"$wineserver" -k 2>/dev/null || true
	echo "wine processes stopped"
	;;
*)
	echo "usage: prefix.sh setup|shutdown WINESERVER" >&2
	exit 2
	;;
esac
