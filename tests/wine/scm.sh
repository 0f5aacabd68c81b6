# SPDX-License-Identifier: Apache-2.0
# Helpers for tests that drive Wine's Service Control Manager; sourced, not run.
# A service's state changes after the call that asked for it returns: these ask again until the
# state is reached (60 s at most).
state_of() { wine sc query wfpbroker 2>/dev/null | tr -d '\r' | awk '/STATE/ { print $4 }'; }
wait_state() {
	for _ in $(seq 1 120); do
		[ "$(state_of)" = "$1" ] && return 0
		sleep 0.5
	done
	return 1
}
start_service() {
	local out
	for _ in $(seq 1 30); do
		out=$(timeout 60 wine net start wfpbroker 2>&1 | tr -d '\r')
		echo "$out" | grep -q "started successfully\|already running" && break
		[ "$(state_of)" = RUNNING ] && break
		sleep 1
	done
	wait_state RUNNING
}
stop_service() {
	timeout 60 wine net stop wfpbroker >/dev/null 2>&1
	wait_state STOPPED
}
service_gone() {
	for _ in $(seq 1 60); do
		wine reg query 'HKLM\System\CurrentControlSet\Services\wfpbroker' >/dev/null 2>&1 || return 0
		sleep 0.5
	done
	return 1
}
