/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The RELP client against a collector that lies: a scripted server on loopback (a thread)
 * answers out of order, refuses, closes, sends frames that cannot be, or nothing at all.
 * Only an answer "200" to the oldest waiting message counts as an acknowledgement; anything
 * else breaks the session with an error and acknowledges nothing, so the follower sends
 * those records again rather than move its cursor past them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "relp.h"
#include "wfpb.h"

struct srv {
	int		lfd;
	char		port[8];
	pthread_t	th;
	void		(*script)(struct srv *, int fd);
	char		got[8][256];	/* the data of the syslog frames read, in order */
	int		n_got;
	const char	*arg;
};

static void
put(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void
putf(int fd, const char *fmt, ...)
{
	char	b[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	put(fd, b);
}

/* An answer frame "TXNR rsp LEN DATA\n". */
static void
rsp(int fd, unsigned txnr, const char *data)
{
	putf(fd, "%u rsp %zu %s\n", txnr, strlen(data), data);
}

/* Reads one client frame; returns its txnr (0 on EOF) and copies the command and data. */
static unsigned
frame(int fd, char cmd[32], char *data, size_t cap)
{
	char		hdr[64];
	size_t		n = 0, len, i;
	int		spaces = 0;
	unsigned	txnr;
	char		c;

	while (n < sizeof(hdr) - 1 && recv(fd, &c, 1, 0) == 1) {
		if (c == ' ' && ++spaces == 3)
			break;
		if (c == '\n' && spaces == 2)
			break;
		hdr[n++] = c;
	}
	hdr[n] = '\0';
	if (sscanf(hdr, "%u %31s %zu", &txnr, cmd, &len) != 3)
		return 0;
	for (i = 0; i < len; i++)
		if (recv(fd, &c, 1, 0) != 1)
			return 0;
		else if (i < cap - 1)
			data[i] = c;
	data[len < cap ? len : cap - 1] = '\0';
	if (len > 0 && (recv(fd, &c, 1, 0) != 1 || c != '\n'))
		return 0;
	return txnr;
}

static void
accept_open(int fd)
{
	char cmd[32], data[512];

	assert_int_equal(frame(fd, cmd, data, sizeof(data)), 1);
	assert_string_equal(cmd, "open");
	assert_non_null(strstr(data, "commands=syslog"));
	rsp(fd, 1, "200 OK\nrelp_version=0\nrelp_software=test\ncommands=syslog");
}

static void *
serve(void *arg)
{
	struct srv	*s = arg;
	int		fd = accept(s->lfd, NULL, NULL);

	if (fd >= 0) {
		s->script(s, fd);
		close(fd);
	}
	return NULL;
}

static void
start(struct srv *s, void (*script)(struct srv *, int))
{
	struct sockaddr_in	a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t		al = sizeof(a);

	memset(s->got, 0, sizeof(s->got));
	s->n_got = 0;
	s->script = script;
	assert_true((s->lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
	snprintf(s->port, sizeof(s->port), "%u", ntohs(a.sin_port));
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void
stop(struct srv *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
}

static struct wfpb_relp_config
cfg_for(struct srv *s, unsigned window)
{
	struct wfpb_relp_config c = { .host = "127.0.0.1", .port = s->port, .window = window, .timeout_ms = 2000 };

	return c;
}

/* Reads n syslog frames, keeping their data. */
static void
read_syslogs(struct srv *s, int fd, int n)
{
	char cmd[32];

	for (int i = 0; i < n; i++) {
		assert_int_equal(frame(fd, cmd, s->got[s->n_got], sizeof(s->got[0])), 2 + i);
		assert_string_equal(cmd, "syslog");
		s->n_got++;
	}
}

static void
script_ack_all(struct srv *s, int fd)
{
	accept_open(fd);
	read_syslogs(s, fd, 3);
	rsp(fd, 2, "200 OK");
	/* The other two in one write, the second cut in the middle of its header. */
	put(fd, "3 rsp 6 200 OK\n4 rs");
	usleep(50000);
	put(fd, "p 6 200 OK\n");
	usleep(200000);
}

static void
acks_counted_in_order(void **state)
{
	struct srv		s;
	struct wfpb_relp	*c;
	struct wfpb_relp_config	cfg;
	char			err[256] = "";
	size_t			acked, total = 0;

	(void)state;
	start(&s, script_ack_all);
	cfg = cfg_for(&s, 8);
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "one", 3, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "two\nlines", 9, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "three", 5, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_unacked(c), 3);
	while (total < 3) {
		assert_int_equal(wfpb_relp_acks(c, 1000, &acked, err, sizeof(err)), 0);
		assert_true(acked > 0);
		total += acked;
	}
	assert_int_equal(total, 3);
	assert_int_equal(wfpb_relp_unacked(c), 0);
	stop(&s);
	assert_string_equal(s.got[0], "one");
	assert_string_equal(s.got[1], "two\nlines");
	assert_string_equal(s.got[2], "three");
	wfpb_relp_close(c, 0);
}

static void
script_window(struct srv *s, int fd)
{
	accept_open(fd);
	read_syslogs(s, fd, 2);
	usleep(100000);
}

/* The window is a promise to the server: a third message with two unanswered is not sent. */
static void
window_is_kept(void **state)
{
	struct srv		s;
	struct wfpb_relp	*c;
	struct wfpb_relp_config	cfg;
	char			err[256] = "";
	size_t			acked;

	(void)state;
	start(&s, script_window);
	cfg = cfg_for(&s, 2);
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "a", 1, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "b", 1, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "c", 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "window"));
	/* The two go out at the next read of answers (there are none). */
	assert_int_equal(wfpb_relp_acks(c, 0, &acked, err, sizeof(err)), 0);
	assert_int_equal(acked, 0);
	stop(&s);
	wfpb_relp_close(c, 0);
}

/* Answers s->arg after reading two messages. */
static void
script_answer(struct srv *s, int fd)
{
	accept_open(fd);
	read_syslogs(s, fd, 2);
	put(fd, s->arg);
	usleep(200000);
}

/* Connects, sends two messages, and expects the server's answer s.arg to break the session. */
static void
expect_broken(const char *answer, const char *why, size_t acked_first)
{
	struct srv		s = { .arg = answer };
	struct wfpb_relp	*c;
	struct wfpb_relp_config	cfg;
	char			err[256] = "";
	size_t			acked = 0, total = 0;
	int			rc;

	start(&s, script_answer);
	cfg = cfg_for(&s, 8);
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "a", 1, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "b", 1, err, sizeof(err)), 0);
	while ((rc = wfpb_relp_acks(c, 1000, &acked, err, sizeof(err))) == 0 && total < 2)
		total += acked;
	assert_int_equal(rc, -1);
	total += acked;
	if (strstr(err, why) == NULL)
		fail_msg("answer %s: error \"%s\", expected \"%s\"", answer, err, why);
	/* Nothing past the break counts: the follower sends those again. */
	assert_int_equal(total, acked_first);
	assert_int_equal(wfpb_relp_unacked(c), 2 - acked_first);
	stop(&s);
	wfpb_relp_close(c, 0);
}

static void
refusal_is_not_an_acknowledgement(void **state)
{
	(void)state;
	expect_broken("2 rsp 13 500 disk full\n", "refused transaction 2: 500 disk full", 0);
	expect_broken("2 rsp 6 200 OK\n3 rsp 3 503\n", "refused transaction 3", 1);
	/* "2000" is not "200". */
	expect_broken("2 rsp 4 2000\n", "refused", 0);
}

static void
answer_out_of_order_breaks(void **state)
{
	(void)state;
	expect_broken("3 rsp 6 200 OK\n", "not the oldest", 0);
	expect_broken("2 rsp 6 200 OK\n2 rsp 6 200 OK\n", "not the oldest", 1);
	expect_broken("7 rsp 6 200 OK\n", "not the oldest", 0);
}

static void
server_close_breaks(void **state)
{
	(void)state;
	expect_broken("0 serverclose 0\n", "closing", 0);
	expect_broken("", "closed the connection", 0);
	expect_broken("2 syslog 5 hello\n", "\"syslog\" command", 0);
}

static void
malformed_frames_break(void **state)
{
	(void)state;
	/* A length no frame may have: refused at its header, nothing allocated for it. */
	expect_broken("2 rsp 999999999 200 OK\n", "malformed", 0);
	/* Ten digits of txnr, a letterless command, a negative length, a missing trailer. */
	expect_broken("1234567890 rsp 6 200 OK\n", "malformed", 0);
	expect_broken("2 123 6 200 OK\n", "malformed", 0);
	expect_broken("2 rsp -6 200 OK\n", "malformed", 0);
	expect_broken("2 rsp 6 200 OKX", "malformed", 0);
	expect_broken("hello world\n", "malformed", 0);
}

static void
script_flood(struct srv *s, int fd)
{
	char	big[4096];
	int	i;

	accept_open(fd);
	read_syslogs(s, fd, 2);
	/* An answer that never ends: 1 MiB of data under a header claiming the largest length allowed. */
	putf(fd, "2 rsp %u 200 OK ", (unsigned)WFPB_RELP_FRAME_MAX);
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < 256; i++)
		put(fd, big);
}

/* A frame longer than the client accepts from a server, within its limit (WFPB_RELP_FRAME_MAX). */
static void
endless_answer_is_bounded(void **state)
{
	struct srv		s;
	struct wfpb_relp	*c;
	struct wfpb_relp_config	cfg;
	char			err[256] = "";
	size_t			acked;

	(void)state;
	start(&s, script_flood);
	cfg = cfg_for(&s, 8);
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "a", 1, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "b", 1, err, sizeof(err)), 0);
	/* Read up to the limit, then refused: no trailer where the length says, or longer than accepted. */
	while (wfpb_relp_acks(c, 1000, &acked, err, sizeof(err)) == 0)
		assert_int_equal(acked, 0);
	assert_true(strstr(err, "malformed") != NULL || strstr(err, "longer than") != NULL);
	assert_int_equal(wfpb_relp_unacked(c), 2);
	stop(&s);
	wfpb_relp_close(c, 0);
}

/* Sends s one byte every ms milliseconds: a collector that trickles its answers. */
static void
trickle(int fd, const char *s, unsigned ms)
{
	for (; *s != '\0'; s++) {
		if (send(fd, s, 1, MSG_NOSIGNAL) != 1)
			return;
		usleep(ms * 1000u);
	}
}

static void
script_trickle(struct srv *s, int fd)
{
	char cmd[32], data[64];

	accept_open(fd);
	read_syslogs(s, fd, 1);
	trickle(fd, "2 rsp 6 200 OK\n", 30);	/* 450 ms: the answer comes, slowly */
	if (frame(fd, cmd, data, sizeof(data)) == 3 && strcmp(cmd, "close") == 0)
		trickle(fd, "3 rsp 6 200 OK\n", 100);	/* the close's answer would take 1.5 s */
}

/*
 * A collector that answers a byte at a time cannot stretch the stop: the answers due and the
 * close's answer share one deadline (it was one per step: the drain's, then the close's own).
 */
static void
stop_has_one_deadline(void **state)
{
	struct srv		s;
	struct wfpb_relp	*c;
	struct wfpb_relp_config	cfg;
	char			err[256] = "";
	uint64_t		t0;

	(void)state;
	start(&s, script_trickle);
	cfg = cfg_for(&s, 8);
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(wfpb_relp_send(c, "a", 1, err, sizeof(err)), 0);
	t0 = wfpb_monotonic_us();
	/* The trickled answer still counts; the polite close is cut off at the deadline. */
	assert_int_equal(wfpb_relp_stop(c, 800), 1);
	assert_true(wfpb_monotonic_us() - t0 < 1100u * 1000u);
	stop(&s);
}

static void
script_offer(struct srv *s, int fd)
{
	char cmd[32], data[512];

	assert_int_equal(frame(fd, cmd, data, sizeof(data)), 1);
	if (s->arg != NULL)
		rsp(fd, 1, s->arg);
	usleep(400000);
}

static void
open_must_offer_syslog(void **state)
{
	struct srv		s = { .arg = "200 OK\nrelp_version=0\ncommands=syslogx,rsp" };
	struct wfpb_relp	*c;
	struct wfpb_relp_config	cfg;
	char			err[256] = "";

	(void)state;
	start(&s, script_offer);
	cfg = cfg_for(&s, 8);
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), -1);
	assert_null(c);
	assert_non_null(strstr(err, "does not offer the syslog command"));
	stop(&s);

	s.arg = "500 no way";
	start(&s, script_offer);
	cfg = cfg_for(&s, 8);
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "refused transaction 1"));
	stop(&s);

	/* Silence: the open times out. */
	s.arg = NULL;
	start(&s, script_offer);
	cfg = cfg_for(&s, 8);
	cfg.timeout_ms = 200;
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no answer"));
	stop(&s);
}

static void
bad_configuration_refused(void **state)
{
	struct wfpb_relp_config	cfg = { .host = "127.0.0.1", .port = "9", .window = 0, .timeout_ms = 200 };
	struct wfpb_relp	*c;
	char			err[256] = "";

	(void)state;
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "window"));
	cfg.window = WFPB_RELP_WINDOW_MAX + 1;
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), -1);
	cfg.window = 4;
	cfg.ca_file = "/nonexistent/ca.pem";
	/* Port 9 on loopback: nothing listens, so the connection is refused before TLS. */
	assert_int_equal(wfpb_relp_connect(&cfg, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "connect"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(acks_counted_in_order),
		cmocka_unit_test(window_is_kept),
		cmocka_unit_test(refusal_is_not_an_acknowledgement),
		cmocka_unit_test(answer_out_of_order_breaks),
		cmocka_unit_test(server_close_breaks),
		cmocka_unit_test(malformed_frames_break),
		cmocka_unit_test(endless_answer_is_bounded),
		cmocka_unit_test(stop_has_one_deadline),
		cmocka_unit_test(open_must_offer_syslog),
		cmocka_unit_test(bad_configuration_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
