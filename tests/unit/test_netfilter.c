/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The netfilter backend (Linux): its record format, parsed as strictly as a
 * kernel would, and its three operations on real sockets. SO_ORIGINAL_DST
 * under a real REDIRECT rule is proved end to end by proxy_loop.sh, which
 * builds the network namespaces that needs.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "netfilter.h"
#include "wfpbroker.pb-c.h"

#define EINVAL_STATUS	WFPBROKER__V1__STATUS_CODE__EINVAL

static void
sample(struct wfpb_nf_record *r, int family)
{
	memset(r, 0, sizeof(*r));
	r->mark = 0x80000005u;
	r->orig_dst.family = family;
	if (family == WFPB_AF_INET) {
		memcpy(r->orig_dst.addr, "\x0a\x4d\x00\x02", 4);
	} else {
		memcpy(r->orig_dst.addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07", 16);
	}
	r->orig_dst.port = 7000;
}

static void
record_round_trips(void **state)
{
	int	families[] = { WFPB_AF_INET, WFPB_AF_INET6 };
	size_t	i;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct wfpb_nf_record	in, out;
		uint8_t			b[WFPB_NF_RECORD_LEN];

		sample(&in, families[i]);
		wfpb_nf_record_encode(&in, b);
		assert_memory_equal(b, "WFPN\x01", 5);
		assert_int_equal(wfpb_nf_record_parse(b, sizeof(b), &out), 0);
		assert_int_equal(out.mark, in.mark);
		assert_int_equal(out.orig_dst.family, families[i]);
		assert_int_equal(out.orig_dst.port, 7000);
		assert_memory_equal(out.orig_dst.addr, in.orig_dst.addr, 16);
	}
}

static void
record_parse_is_strict(void **state)
{
	struct wfpb_nf_record	r, out;
	uint8_t			good[WFPB_NF_RECORD_LEN], b[WFPB_NF_RECORD_LEN + 1];
	size_t			i;

	(void)state;
	sample(&r, WFPB_AF_INET);
	wfpb_nf_record_encode(&r, good);
	assert_int_equal(wfpb_nf_record_parse(NULL, 0, &out), EINVAL_STATUS);
	assert_int_equal(wfpb_nf_record_parse(good, sizeof(good) - 1, &out), EINVAL_STATUS);
	memcpy(b, good, sizeof(good));
	b[sizeof(good)] = 0;
	assert_int_equal(wfpb_nf_record_parse(b, sizeof(b), &out), EINVAL_STATUS);
	/* magic, version, family, reserved, and the IPv4 padding: each one byte wrong is refused */
	{
		const size_t at[] = { 0, 3, 4, 5, 6, 7, 16, 27 };

		for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
			memcpy(b, good, sizeof(good));
			b[at[i]] ^= 0x40;
			assert_int_equal(wfpb_nf_record_parse(b, sizeof(good), &out), EINVAL_STATUS);
		}
	}
	/* The mark, the address and the port are data: any value parses. */
	memcpy(b, good, sizeof(good));
	b[8] = 0xff;
	b[12] = 0xff;
	b[29] = 0xff;
	assert_int_equal(wfpb_nf_record_parse(b, sizeof(good), &out), 0);
	assert_int_equal(out.mark >> 24, 0xff);
}

/* A connected loopback pair: *acc is the accepted end, *con the connecting end. */
static void
tcp_pair(int *acc, int *con, struct sockaddr_in *sin)
{
	socklen_t	len = sizeof(*sin);
	int		l = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(l >= 0);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)sin, sizeof(*sin)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)sin, &len), 0);
	*con = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(*con, (struct sockaddr *)sin, sizeof(*sin)), 0);
	*acc = accept(l, NULL, NULL);
	assert_true(*acc >= 0);
	close(l);
}

static void
unredirected_connection_reports_itself(void **state)
{
	struct wfpb_backend	be;
	struct wfpb_buf		rec = { 0 }, ctx = { 0 };
	struct sockaddr_in	sin, peer;
	socklen_t		len = sizeof(peer);
	int			acc, con, os_err = 0;

	(void)state;
	assert_int_equal(wfpb_backend_open("netfilter", &be), 0);
	assert_string_equal(be.ops->name, "netfilter");
	tcp_pair(&acc, &con, &sin);
	assert_int_equal(getsockname(con, (struct sockaddr *)&peer, &len), 0);
	assert_int_equal(be.ops->query_records(be.ctx, acc, &rec, &os_err), 0);
	/* Conntrack may or may not track loopback here; if it does, the "original" is the real local end. */
	if (rec.len > 0) {
		struct wfpb_nf_record r;

		assert_int_equal(wfpb_nf_record_parse(rec.data, rec.len, &r), 0);
		assert_int_equal(r.orig_dst.port, ntohs(sin.sin_port));
		assert_memory_equal(r.orig_dst.addr, &sin.sin_addr, 4);
		assert_int_equal(r.mark, 0);
	}
	assert_int_equal(be.ops->query_context(be.ctx, acc, &ctx, &os_err), 0);
	assert_int_equal(ctx.len, 2 * WFPB_CONTEXT_HOP_LEN);
	assert_int_equal(ctx.data[0], WFPB_AF_INET);
	assert_memory_equal(ctx.data + 1, &peer.sin_addr, 4);
	assert_int_equal((ctx.data[17] << 8) | ctx.data[18], ntohs(peer.sin_port));
	assert_int_equal(ctx.data[WFPB_CONTEXT_HOP_LEN], WFPB_AF_INET);
	assert_int_equal((ctx.data[WFPB_CONTEXT_HOP_LEN + 17] << 8) | ctx.data[WFPB_CONTEXT_HOP_LEN + 18],
	    ntohs(sin.sin_port));
	free(rec.data);
	free(ctx.data);
	close(acc);
	close(con);
	wfpb_backend_close(&be);
}

static int	fake_errno;

static int
original_dst_fails(int fd, int level, int name, void *val, socklen_t *len)
{
	(void)fd; (void)level; (void)name; (void)val; (void)len;
	errno = fake_errno;
	return -1;
}

/*
 * Only "conntrack has no entry" (ENOENT) or "no conntrack" (ENOPROTOOPT)
 * means not redirected; an EACCES or EPERM from SO_ORIGINAL_DST is the
 * kernel refusing the broker, and must reach the caller as EACCES — not be
 * read as "no entry" because its status number equals an in-band sentinel.
 */
static void
refused_query_is_not_no_entry(void **state)
{
	static const int	errs[] = { EACCES, EPERM };
	struct wfpb_backend	be;
	struct wfpb_buf		rec = { 0 }, ctx = { 0 };
	struct sockaddr_in	sin;
	int			acc, con, os_err, i;

	(void)state;
	assert_int_equal(wfpb_backend_open("netfilter", &be), 0);
	tcp_pair(&acc, &con, &sin);
	wfpb__nf_set_getsockopt(original_dst_fails);
	for (i = 0; i < 2; i++) {
		fake_errno = errs[i];
		os_err = 0;
		assert_int_equal(be.ops->query_records(be.ctx, acc, &rec, &os_err), WFPBROKER__V1__STATUS_CODE__EACCES);
		assert_int_equal(os_err, errs[i]);
		assert_null(rec.data);
		assert_int_equal(be.ops->query_context(be.ctx, acc, &ctx, &os_err), WFPBROKER__V1__STATUS_CODE__EACCES);
		assert_null(ctx.data);
	}
	fake_errno = ENOENT;
	assert_int_equal(be.ops->query_records(be.ctx, acc, &rec, &os_err), 0);
	assert_int_equal(rec.len, 0);
	wfpb__nf_set_getsockopt(NULL);
	close(acc);
	close(con);
	wfpb_backend_close(&be);
}

/* The same over IPv6 loopback: IP6T_SO_ORIGINAL_DST's path. */
static void
unredirected_ipv6_connection_reports_itself(void **state)
{
	struct wfpb_backend	be;
	struct wfpb_buf		rec = { 0 }, ctx = { 0 };
	struct sockaddr_in6	sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t		len = sizeof(sin6);
	int			l, acc, con, os_err = 0;

	(void)state;
	assert_int_equal(wfpb_backend_open("netfilter", &be), 0);
	l = socket(AF_INET6, SOCK_STREAM, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin6, &len), 0);
	con = socket(AF_INET6, SOCK_STREAM, 0);
	assert_int_equal(connect(con, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
	acc = accept(l, NULL, NULL);
	assert_true(acc >= 0);
	assert_int_equal(be.ops->query_records(be.ctx, acc, &rec, &os_err), 0);
	if (rec.len > 0) {
		struct wfpb_nf_record r;

		assert_int_equal(wfpb_nf_record_parse(rec.data, rec.len, &r), 0);
		assert_int_equal(r.orig_dst.family, WFPB_AF_INET6);
		assert_memory_equal(r.orig_dst.addr, &sin6.sin6_addr, 16);
		assert_int_equal(r.orig_dst.port, ntohs(sin6.sin6_port));
	}
	assert_int_equal(be.ops->query_context(be.ctx, acc, &ctx, &os_err), 0);
	assert_int_equal(ctx.len, 2 * WFPB_CONTEXT_HOP_LEN);
	assert_int_equal(ctx.data[0], WFPB_AF_INET6);
	assert_int_equal(ctx.data[WFPB_CONTEXT_HOP_LEN], WFPB_AF_INET6);
	assert_memory_equal(ctx.data + WFPB_CONTEXT_HOP_LEN + 1, &sin6.sin6_addr, 16);
	assert_int_equal((ctx.data[WFPB_CONTEXT_HOP_LEN + 17] << 8) | ctx.data[WFPB_CONTEXT_HOP_LEN + 18],
	    ntohs(sin6.sin6_port));
	free(rec.data);
	free(ctx.data);
	close(acc);
	close(con);
	close(l);
	wfpb_backend_close(&be);
}

static uint32_t
mark_of(int fd)
{
	uint32_t	m = 0xdeadbeef;
	socklen_t	len = sizeof(m);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_MARK, &m, &len), 0);
	return m;
}

/* Marks accumulate: the record's, OR the principal's own; garbage changes nothing. */
static void
set_records_ors_the_marks(void **state)
{
	struct wfpb_backend	be;
	struct wfpb_nf_record	r;
	uint8_t			blob[WFPB_NF_RECORD_LEN];
	int			s, os_err = 0;

	(void)state;
	assert_int_equal(wfpb_backend_open("netfilter", &be), 0);
	sample(&r, WFPB_AF_INET);
	r.mark = 0x10;
	wfpb_nf_record_encode(&r, blob);
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (geteuid() != 0) {
		assert_int_equal(be.ops->set_records(be.ctx, s, blob, sizeof(blob), 0x1, 0xffffffffu, &os_err),
		    WFPBROKER__V1__STATUS_CODE__EACCES);
		assert_int_equal(os_err, EPERM);
		assert_int_equal(be.ops->records_applied(be.ctx), 0);
		goto out;
	}
	assert_int_equal(be.ops->set_records(be.ctx, s, blob, sizeof(blob), 0x1, 0xffffffffu, &os_err), 0);
	assert_int_equal(mark_of(s), 0x11);
	assert_int_equal(be.ops->records_applied(be.ctx), 1);
	blob[4] = 2;
	assert_int_equal(be.ops->set_records(be.ctx, s, blob, sizeof(blob), 0x4, 0xffffffffu, &os_err), EINVAL_STATUS);
	assert_int_equal(mark_of(s), 0x11);
	assert_int_equal(be.ops->records_applied(be.ctx), 1);
	close(s);
	/* No records: only the principal's own bit. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(be.ops->set_records(be.ctx, s, NULL, 0, 0x2, 0xffffffffu, &os_err), 0);
	assert_int_equal(mark_of(s), 0x2);
	assert_int_equal(be.ops->records_applied(be.ctx), 1);
	close(s);
	/*
	 * A record carrying bits outside the principal's mark_mask (0xca6c is
	 * wg-quick's fwmark) keeps only the bits inside it, plus its own.
	 */
	r.mark = 0xca6c;
	wfpb_nf_record_encode(&r, blob);
	s = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(be.ops->set_records(be.ctx, s, blob, sizeof(blob), 0x1, 0xff, &os_err), 0);
	assert_int_equal(mark_of(s), 0x6d);
out:
	close(s);
	wfpb_backend_close(&be);
}

/* The admin requirement: without CAP_NET_ADMIN the kernel refuses SO_MARK, and the broker says so. */
static void
unprivileged_set_is_refused(void **state)
{
	pid_t	pid;
	int	st;

	(void)state;
	if (geteuid() != 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		uint32_t m = 1;

		assert_int_equal(setsockopt(s, SOL_SOCKET, SO_MARK, &m, sizeof(m)), -1);
		assert_int_equal(errno, EPERM);
		close(s);
		return;
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct wfpb_backend	be;
		struct wfpb_nf_record	r;
		uint8_t			blob[WFPB_NF_RECORD_LEN];
		int			s, os_err = 0, rc;

		if (setgid(65534) != 0 || setuid(65534) != 0 || wfpb_backend_open("netfilter", &be) != 0)
			_exit(2);
		sample(&r, WFPB_AF_INET);
		wfpb_nf_record_encode(&r, blob);
		s = socket(AF_INET, SOCK_STREAM, 0);
		rc = be.ops->set_records(be.ctx, s, blob, sizeof(blob), 0x1, 0xffffffffu, &os_err);
		_exit(rc == WFPBROKER__V1__STATUS_CODE__EACCES && os_err == EPERM && mark_of(s) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(record_round_trips),
		cmocka_unit_test(record_parse_is_strict),
		cmocka_unit_test(unredirected_connection_reports_itself),
		cmocka_unit_test(unredirected_ipv6_connection_reports_itself),
		cmocka_unit_test(refused_query_is_not_no_entry),
		cmocka_unit_test(set_records_ors_the_marks),
		cmocka_unit_test(unprivileged_set_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
