# SPDX-License-Identifier: Apache-2.0
# An rsyslog of a test's own (relp_e2e, bench/audit_ship.sh); sourced, not run.
#   listening PORT                  0 when something accepts on 127.0.0.1:PORT
#   rsyslog_up CONF WRITE PORTVAR...
#       picks a free loopback port for each PORTVAR (below the kernel's ephemeral range: a port
#       an outgoing connection holds cannot be bound, and other tests make thousands), has the
#       function WRITE write the configuration CONF with them, starts rsyslogd on it and waits
#       until every port listens; another set of ports if one was taken meanwhile (5 tries).
#       Sets rs_pid. rsyslog's own output goes to CONF.out (of its last start).
#   rsyslog_start CONF PORT...      starts it again on the same configuration (rs_pid)
#   rsyslog_stop                    stops it (SIGTERM: it writes out what it holds)
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_low_port() {
	local low p
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$low" -gt 12000 ] || low=32768
	for _ in $(seq 1 50); do
		p=$((10000 + RANDOM % (low - 10000)))
		listening "$p" || { echo "$p"; return 0; }
	done
	return 1
}

rsyslog_start() {
	local conf=$1 p ok
	shift
	rsyslogd -n -f "$conf" -i "$conf.pid" >"$conf.out" 2>&1 &
	rs_pid=$!
	for _ in $(seq 1 400); do
		ok=1
		for p in "$@"; do listening "$p" || ok=0; done
		[ "$ok" = 1 ] && return 0
		# A port taken: rsyslogd runs on without that listener.
		kill -0 "$rs_pid" 2>/dev/null && ! grep -q "could not activate" "$conf.out" || break
		sleep 0.05
	done
	kill -9 "$rs_pid" 2>/dev/null
	wait "$rs_pid" 2>/dev/null
	rs_pid=
	tail -n 3 "$conf.out"
	return 1
}

rsyslog_up() {
	local conf=$1 write=$2 v ports
	shift 2
	for _ in 1 2 3 4 5; do
		ports=
		for v in "$@"; do
			printf -v "$v" '%s' "$(free_low_port)"
			ports="$ports ${!v}"
		done
		"$write"
		# shellcheck disable=SC2086
		rsyslog_start "$conf" $ports && return 0
	done
	return 1
}

rsyslog_stop() { [ -n "${rs_pid:-}" ] && kill -TERM "$rs_pid" 2>/dev/null; wait "$rs_pid" 2>/dev/null; rs_pid=; }
