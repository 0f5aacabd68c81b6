#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# wine_pool.sh WIN64_BUILD_DIR [SECONDS]: the Windows service's worker pool under Wine. The same
# wfpbrokerd.exe runs with workers = 1, 2 and 4 in turn; against each, bench-pool.exe drives 4
# clients that open and close NK sessions (handshakes: the work the pool spreads) and then 4
# that ping over one session each (dispatch: the part under the core lock). Every rate is
# divided by the workers = 1 rate of the same run. Wine is not Windows: its wineserver carries
# every pipe operation, so these ratios say whether the pool spreads the broker's own work, not
# what Windows would measure.
set -eu
build=$(cd "$1" && pwd)
secs=${2:-3}
brokerd=$build/service/wfpbrokerd.exe
bench=$build/bench/bench-pool.exe
here=$(cd "$(dirname "$0")" && pwd)
export WINEPREFIX=$build/wineprefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
wineserver_bin=$(command -v wineserver || echo /usr/lib/wine/wineserver)
"$here/../tests/wine/prefix.sh" setup "$wineserver_bin" >/dev/null
work=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	"$here/../tests/wine/prefix.sh" shutdown "$wineserver_bin" >/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
winpath() { printf 'Z:%s' "${1//\//\\}"; }

declare -A rate
for workers in 1 2 4; do
	pipe="\\\\.\\pipe\\wfpbench-$$-$workers"
	state=$(winpath "$work/state-$workers")
	# Wine's one user is a principal, so each ping is audited as a proxy's requests are, and the
	# per-user cap and audit rate are lifted: the pool is measured, not the throttles.
	printf '[service]\nendpoint = %s\nstate_dir = %s\nbackend = sim\nworkers = %s\nmax_sessions = 256\nmax_sessions_per_user = 256\n[principal bench]\nsid = S-1-5-21-0-0-0-1000\nops = stash\naudit_rate = 10000000\n' \
		"$pipe" "$state" "$workers" >"$work/w$workers.conf"
	wine "$brokerd" --console --config "$(winpath "$work/w$workers.conf")" >"$work/broker-$workers.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do
		wine "$bench" "$pipe" "$state\\server.pub" 1 0.05 ping >/dev/null 2>&1 && break
		sleep 0.2
	done
	for mode in handshake ping; do
		out=$(wine "$bench" "$pipe" "$state\\server.pub" 4 "$secs" "$mode" | tr -d '\r')
		rate[$mode,$workers]=${out##* }
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	pid=
done

printf '\nWindows service under Wine: 4 clients, %s s each, machine of %s cores\n' "$secs" "$(nproc)"
printf '%-26s %12s %12s %12s\n' "" "1 worker" "2 workers" "4 workers"
for mode in handshake ping; do
	label=$([ "$mode" = handshake ] && echo "NK handshakes/s" || echo "pings/s (one session each)")
	printf '%-26s %12s %12s %12s\n' "$label" "${rate[$mode,1]}" "${rate[$mode,2]}" "${rate[$mode,4]}"
	awk -v a="${rate[$mode,1]}" -v b="${rate[$mode,2]}" -v c="${rate[$mode,4]}" \
		'BEGIN { printf "%-26s %12s %12.2f %12.2f\n", "  ratio to 1 worker", "1.00", b / a, c / a }'
done
