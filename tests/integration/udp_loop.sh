#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# udp_loop.sh BROKERD WFPBCTL UDP_RELAY TCP_ECHO WORKDIR [--demo]
#
# proxy_loop.sh's story over UDP, with the real Linux kernel: two cooperating transparent UDP
# proxies, A and B, each an unprivileged wfpb-udp-relay under its own uid with its own mark bit.
# nftables TPROXY rules deliver a flow for the origin (a DNS-like server: one query, one answer)
# to A unless it bears A's bit, and to B unless it bears B's bit. Receiving a TPROXY'd flow takes
# IP_TRANSPARENT and sending with a mark SO_MARK, both CAP_NET_ADMIN: the broker's, per flow.
#
#   1. Without records (each relay's upstream carries only its own bit), A's upstream flow is
#      B's to intercept and B's is A's: the query bounces until a proxy reaches its bound, and
#      the client gets no answer.
#   2. With the broker carrying the records (the datagram's marks, SO_RCVMARK, OR the
#      principal's bit), the query passes A and B once each and the answer comes back to the
#      client from the origin's own address.
#
# Locally sent datagrams meet TPROXY only in PREROUTING, so the proxy host re-routes them
# through lo (a route-type output chain sets a mark that policy routing sends to a local
# table), the standard setup for transparent proxying of a host's own traffic. Two network
# namespaces, created here and removed on every exit path. Needs root; fails (never skips)
# when namespaces, nftables' tproxy or SO_RCVMARK are unavailable. Then the fixed flow again
# over IPv6. --demo prints the story flow by flow (./dev.sh demo).
set -u
brokerd=$1 wfpbctl=$2 relay=$3 tcp_echo=$4 work=$5 demo=${6:-}
CHECK_QUIET=$demo
. "$(dirname "$0")/../check.sh"
say() { [ -z "$demo" ] || printf '%s\n' "$*"; }

origin=10.78.0.2 origin6=fd78::2 port=5300 a_port=7301 b_port=7302 mark_a=0x1 mark_b=0x2 via_lo=0x100
. "$(dirname "$0")/../netns.sh"
netns_up 10.78.0 fd78
# Datagrams marked $via_lo go through lo again, and so through PREROUTING, where TPROXY acts.
ip -n "$px" rule add fwmark "$via_lo/$via_lo" lookup 100 && ip -n "$px" route add local 0.0.0.0/0 dev lo table 100 &&
	ip -n "$px" -6 rule add fwmark "$via_lo/$via_lo" lookup 100 && ip -n "$px" -6 route add local ::/0 dev lo table 100 ||
	die "cannot add the policy routing TPROXY needs for local traffic"
in_px nft -f - <<NFT || die "nftables refused the tproxy rules (is nft_tproxy available?)"
table ip wfpb_udp {
	chain output {
		type route hook output priority mangle; policy accept;
		ip daddr $origin udp dport $port meta mark & 0x3 != 0x3 meta mark set meta mark | $via_lo
	}
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		ip daddr $origin udp dport $port meta mark & $mark_a == 0 counter tproxy to 127.0.0.1:$a_port accept comment "to proxy A"
		ip daddr $origin udp dport $port meta mark & $mark_b == 0 counter tproxy to 127.0.0.1:$b_port accept comment "to proxy B"
	}
}
table ip6 wfpb_udp {
	chain output {
		type route hook output priority mangle; policy accept;
		ip6 daddr $origin6 udp dport $port meta mark & 0x3 != 0x3 meta mark set meta mark | $via_lo
	}
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		ip6 daddr $origin6 udp dport $port meta mark & $mark_a == 0 counter tproxy to [::1]:$a_port accept comment "to proxy A"
		ip6 daddr $origin6 udp dport $port meta mark & $mark_b == 0 counter tproxy to [::1]:$b_port accept comment "to proxy B"
	}
}
NFT
redirects() { # "A B": datagrams the kernel delivered to each proxy since the last mark_counters
	in_px nft list chain "$fam" wfpb_udp prerouting | awk '/to proxy A/ { for (i = 1; i < NF; i++) if ($i == "packets") a = $(i + 1) }
		/to proxy B/ { for (i = 1; i < NF; i++) if ($i == "packets") b = $(i + 1) } END { print a + 0, b + 0 }' |
		{ read -r a b; echo $((a - base_a)) $((b - base_b)); }
}
fam=ip base_a=0 base_b=0
mark_counters() { read -r da db < <(redirects); base_a=$((base_a + da)) base_b=$((base_b + db)); }

ip netns exec "$og" "$tcp_echo" udp-server "$work/origin.port" "$origin" "$port" &
pids="$pids $!"
ip netns exec "$og" "$tcp_echo" udp-server "$work/origin6.port" "$origin6" "$port" &
pids="$pids $!"
for _ in $(seq 1 50); do [ -s "$work/origin.port" ] && break; sleep 0.1; done
[ -s "$work/origin.port" ] || die "the origin server did not start"

endpoint=$work/run/wfpbroker.sock
pub=$work/state/server.pub
proxy_section() { # NAME UID PORT MARK
	printf '[principal %s]\nuid = %s\nops = udp_listen udp_flow\nudp_listen = 127.0.0.1/32:%s, [::1]/128:%s\n' \
		"$1" "$2" "$3" "$3"
	printf 'udp_connect = %s/32:%s, [%s]/128:%s\nmark = %s\nmark_mask = 0x3\n\n' "$origin" "$port" "$origin6" "$port" "$4"
}
write_broker_conf udp_loop.sh
in_px "$brokerd" --config "$work/wfpbroker.conf" >"$work/broker.log" 2>&1 &
pids="$pids $!"
ctl() { in_px "$wfpbctl" --endpoint "$endpoint" --server-key "$pub" --timeout 3000 "$@"; }
for _ in $(seq 1 100); do ctl ping >/dev/null 2>&1 && break; sleep 0.1; done
check "the broker (backend netfilter) answers in the proxy namespace" eval "ctl ping >/dev/null"
status_field() { ctl status | awk -v k="$1" '$1 == k { print $2 }'; }

relay_pids=
relay_host=127.0.0.1
listening() { for name in A B; do check "proxy $name listens through the broker ($1)" grep -q "listening on" "$work/$1-$name.log"; done; }
flows() { grep -c ' flow ' "$work/$1-$2.log"; }

# --- 1. Without records: the loop ---------------------------------------------
say "== UDP: a DNS-like query to $origin:$port, through transparent proxies A (bit $mark_a) and B (bit $mark_b)"
say "   nftables TPROXY: a datagram for the origin goes to A unless it bears A's bit, to B unless B's."
say ""
say "== 1. Each proxy's upstream carries only its own bit (no records)"
mark_counters
bound=10
start_relays loop --idle-ms 1000 --no-records --max-flows "$bound"
listening loop
in_px "$tcp_echo" udp-client "$port" "query" "$origin" 3 >"$work/loop-client.out" 2>&1
sleep 0.3
read -r ra rb < <(redirects)
stop_relays
say "   the client's one query, as the proxies saw it (first 6 flows):"
[ -z "$demo" ] || paste -d '\n' <(grep ' flow ' "$work/loop-A.log") <(grep ' flow ' "$work/loop-B.log") |
	grep -v '^$' | head -n 6 | sed 's/^/     /'
say "   ... the kernel delivered it $ra times to A and $rb times to B, until each proxy reached its bound of $bound;"
say "   the client got: \"$(tr -d '\n' <"$work/loop-client.out")\" (no answer)"
check "without records the query loops until each proxy reaches its bound of $bound flows: $ra deliveries to A, $rb to B" \
	test "$ra" -ge "$bound" -a "$rb" -ge "$bound"
check "  each proxy's upstream bore only its own bit" eval \
	"grep -q 'upstream => $origin:$port mark $mark_a' '$work/loop-A.log' &&
	 grep -q 'upstream => $origin:$port mark $mark_b' '$work/loop-B.log'"
check "  and the client got no answer" eval "! grep -q 'answer:query' '$work/loop-client.out'"

# --- 2. With the broker carrying records -----------------------------------------
say ""
say "== 2. The same proxies carrying the flow's records through wfpbroker"
mark_counters
applied0=$(status_field records_applied)
start_relays fixed --idle-ms 1000
listening fixed
reply=$(in_px "$tcp_echo" udp-client "$port" "query" "$origin" 5 2>&1)
read -r ra rb < <(redirects)
say "   the client's one query, flow by flow:"
[ -z "$demo" ] || cat "$work/fixed-A.log" "$work/fixed-B.log" | grep ' flow ' | sed 's/^/     /'
say "   kernel deliveries: $ra to A, $rb to B; the client got back: \"$reply\", from $origin:$port"
check "with records the answer comes back, from the origin's own address: \"$reply\"" test "$reply" = "answer:query"
check "  the kernel delivered the flow once to A and once to B (counters: $ra $rb)" test "$ra $rb" = "1 1"
check "  A's upstream bore A's bit, B's both bits (the records carried on)" eval \
	"test $(flows fixed A) = 1 && grep -q 'upstream => $origin:$port mark $mark_a' '$work/fixed-A.log' &&
	 test $(flows fixed B) = 1 && grep -q 'upstream => $origin:$port mark 0x3' '$work/fixed-B.log'"
check "  the broker applied two records (one per proxy)" test "$(status_field records_applied)" = $((applied0 + 2))
stop_relays
audit_records flow "$origin:$port" "flow with its records, its flow id and the original destination"

# --- 3. The same over IPv6 (IPV6_RECVORIGDSTADDR, IPV6_TRANSPARENT) ---------------
say ""
say "== 3. The same over IPv6"
fam=ip6 base_a=0 base_b=0
mark_counters
relay_host="[::1]"
start_relays v6 --idle-ms 1000
listening v6
reply=$(in_px "$tcp_echo" udp-client "$port" "query6" "$origin6" 5 2>&1)
read -r ra rb < <(redirects)
check "IPv6: the answer comes back from the origin's own address: \"$reply\"" test "$reply" = "answer:query6"
check "  delivered once to A and once to B (counters: $ra $rb), the marks carried on" eval \
	"test '$ra $rb' = '1 1' && grep -q 'upstream => \[$origin6\]:$port mark 0x3' '$work/v6-B.log'"
stop_relays
say "   the client got back: \"$reply\" (kernel deliveries: $ra to A, $rb to B)"
say ""
[ -n "$demo" ] || for f in fixed-A fixed-B v6-A v6-B; do sed "s/^/    $f: /" "$work/$f.log"; done
summary
