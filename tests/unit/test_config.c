/* SPDX-License-Identifier: Apache-2.0 */
/* The INI reader and the configuration built on it: values, limits, line-numbered errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "gpo.h"
#include "log.h"

static struct wfpb_config base;

static int
setup(void **state)
{
	(void)state;
	wfpb_config_defaults(&base, "/run/x.sock", "/var/lib/x");
	return 0;
}

static int
parse(const char *text, struct wfpb_config *out, struct wfpb_ini_error *err)
{
	return wfpb_config_parse(text, strlen(text), &base, out, err);
}

static void
defaults_follow_design(void **state)
{
	(void)state;
	assert_int_equal(base.handshake_timeout_ms, 5000);
	assert_int_equal(base.idle_timeout_ms, 300000);
	assert_int_equal(base.max_sessions, 256);
	assert_int_equal(base.max_sessions_per_principal, 64);
	assert_int_equal(base.blob_max, 16384);
	assert_int_equal(base.stash_max_per_principal, 1024);
	assert_int_equal(base.stash_ttl_ms, 120000);
	/* The platform's real backend: a test double is never chosen implicitly. */
#ifdef _WIN32
	assert_string_equal(base.backend, "wfp");
#else
	assert_string_equal(base.backend, "netfilter");
#endif
}

static void
values_are_read(void **state)
{
	struct wfpb_config	c;
	struct wfpb_ini_error	err;
	uint8_t			k[32];

	(void)state;
	assert_int_equal(parse("; comment\n# another\n[service]\n  endpoint = /tmp/a.sock \n"
	    "max_sessions=9\r\nhandshake_timeout_ms = 250\nbackend = netfilter\n\n[principal a]\n"
	    "key = 0101010101010101010101010101010101010101010101010101010101010101\n"
	    "[principal b]\nuid = 7\nkey = 0202020202020202020202020202020202020202020202020202020202020202\n"
	    "ops = stash fetch,admin\nmark = 0x10\nmax_stash = 3\n", &c, &err), 0);
	assert_string_equal(c.endpoint, "/tmp/a.sock");
	assert_string_equal(c.state_dir, "/var/lib/x");
	assert_int_equal(c.max_sessions, 9);
	assert_int_equal(c.handshake_timeout_ms, 250);
	assert_string_equal(c.backend, "netfilter");
	assert_int_equal(c.nprincipals, 2);
	assert_string_equal(c.principals[1].name, "b");
	assert_true(c.principals[1].has_uid);
	assert_int_equal(c.principals[1].uid, 7);
	assert_int_equal(c.principals[1].perms, WFPB_PERM_STASH | WFPB_PERM_FETCH | WFPB_PERM_ADMIN);
	assert_int_equal(c.principals[1].mark, 0x10);
	assert_int_equal(c.principals[1].max_stash, 3);
	assert_int_equal(c.principals[0].perms, 0);
	memset(k, 2, sizeof(k));
	assert_true(wfpb_config_key_enrolled(&c, k));
	memset(k, 3, sizeof(k));
	assert_false(wfpb_config_key_enrolled(&c, k));
	wfpb_config_free(&c);
	/* base is untouched. */
	assert_int_equal(base.max_sessions, 256);
}

static void
expect_error(const char *text, unsigned line)
{
	struct wfpb_config	c;
	struct wfpb_ini_error	err;

	assert_int_equal(parse(text, &c, &err), WFPB_E_CONFIG);
	assert_int_equal(err.line, line);
	assert_true(strlen(err.message) > 0);
	assert_null(c.principals);
}

static void
errors_name_their_line(void **state)
{
	(void)state;
	expect_error("[service]\nmax_sessions = 0\n", 2);
	expect_error("[service]\nmax_sessions = -1\n", 2);
	expect_error("[service]\nmax_sessions = 12x\n", 2);
	expect_error("[service]\nmax_sessions = 99999999999999999999\n", 2);
	expect_error("[service]\n\nbackend = magic\n", 3);
	expect_error("[service]\nno_such_key = 1\n", 2);
	expect_error("[nosuchsection]\nkey = 1\n", 2);
	expect_error("key = 1\n", 1);
	expect_error("[service\n", 1);
	expect_error("[service]\njust words\n", 2);
	expect_error("[principal p]\nkey = 1234\n", 2);
	expect_error("[principal p]\nkey = zz01010101010101010101010101010101010101010101010101010101010101\n", 2);
	expect_error("[principal p]\nuid = 1\nops = stash teleport\n", 3);
	expect_error("[principal p]\nuid = 1\nsid = 1-5-18\n", 3);
	expect_error("[principal p]\nuid = 1\n[principal q]\nuid = 2\n[principal p]\nuid = 3\n", 6);
	expect_error("[principal bad name!]\nuid = 1\n", 2);
	expect_error("[principalx]\nuid = 1\n", 2);
	expect_error("[service]\n = 5\n", 2);
}

static void
principal_without_matcher_is_an_error(void **state)
{
	struct wfpb_config	c;
	struct wfpb_ini_error	err;

	(void)state;
	assert_int_equal(parse("[principal everyone]\nops = admin\n", &c, &err), WFPB_E_CONFIG);
	assert_non_null(strstr(err.message, "matches nobody"));
	/* elevated narrows a match; it identifies nobody by itself. */
	assert_int_equal(parse("[principal admins]\nelevated = yes\nops = admin\n", &c, &err), WFPB_E_CONFIG);
	assert_non_null(strstr(err.message, "matches nobody"));
	assert_int_equal(parse("[principal admins]\ngroup_sid = S-1-5-32-544\nelevated = maybe\n", &c, &err),
	    WFPB_E_CONFIG);
	assert_int_equal(parse("[principal admins]\ngroup_sid = S-1-5-32-544\nelevated = no\n", &c, &err), 0);
	assert_string_equal(c.principals[0].group_sid, "S-1-5-32-544");
	assert_true(c.principals[0].has_elevated && !c.principals[0].elevated);
	wfpb_config_free(&c);
}

static void
netfilter_proxies_need_a_mark(void **state)
{
	struct wfpb_config	c;
	struct wfpb_ini_error	err;

	(void)state;
	assert_int_equal(parse("[service]\nbackend = netfilter\n[principal p]\nuid = 5\nops = listen accept connect\n",
	    &c, &err), WFPB_E_CONFIG);
	assert_non_null(strstr(err.message, "no mark"));
	assert_int_equal(parse("[service]\nbackend = netfilter\n[principal p]\nuid = 5\nops = apply\nmark = 0\n",
	    &c, &err), WFPB_E_CONFIG);
	/* With a mark, or without a grant that makes connections, or under sim: accepted. */
	assert_int_equal(parse("[service]\nbackend = netfilter\n[principal p]\nuid = 5\nops = connect\nmark = 0x2\n"
	    "[principal q]\nuid = 6\nops = stash fetch\n", &c, &err), 0);
	assert_int_equal(c.principals[0].mark, 2);
	wfpb_config_free(&c);
	assert_int_equal(parse("[service]\nbackend = sim\n[principal p]\nuid = 5\nops = connect\n", &c, &err), 0);
	wfpb_config_free(&c);
#ifndef _WIN32
	/* No backend named is netfilter here, and its rule holds. */
	assert_int_equal(parse("[principal p]\nuid = 5\nops = connect\n", &c, &err), WFPB_E_CONFIG);
#endif
}

static void
overlong_line_and_nul_are_errors(void **state)
{
	struct wfpb_config	c;
	struct wfpb_ini_error	err;
	char			big[WFPB_INI_LINE_MAX + 64];
	const char		nul[] = "[service]\nendpoint = a\0b\n";

	(void)state;
	memcpy(big, "[service]\nendpoint = ", 21);
	memset(big + 21, 'a', sizeof(big) - 22);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(parse(big, &c, &err), WFPB_E_CONFIG);
	assert_int_equal(err.line, 2);
	assert_int_equal(wfpb_config_parse(nul, sizeof(nul) - 1, &base, &c, &err), WFPB_E_CONFIG);
	assert_int_equal(err.line, 2);
}

static void
missing_file_is_noent(void **state)
{
	struct wfpb_config	c;
	struct wfpb_ini_error	err;

	(void)state;
	assert_int_equal(wfpb_config_load("/nonexistent/wfpbroker.conf", &base, &c, &err), WFPB_E_NOENT);
}

/* The documented examples end lines with comments: they are not part of the value. */
static void
inline_comments_end_a_line(void **state)
{
	struct wfpb_ini_error	err;
	struct wfpb_config	c;
	const char		*text = "[service]  ; the service\n"
	    "max_sessions = 8            ; fewer than the default\n"
	    "backend = sim\t# a test double\n"
	    "endpoint = /run/a;b.sock\n"
	    "[principal p] # one\n"
	    "uid = 1001 ; a user\n";

	(void)state;
	assert_int_equal(wfpb_config_parse(text, strlen(text), &base, &c, &err), 0);
	assert_int_equal(c.max_sessions, 8);
	assert_string_equal(c.backend, "sim");
	assert_string_equal(c.endpoint, "/run/a;b.sock");	/* no space before ';': part of the value */
	assert_int_equal(c.nprincipals, 1);
	assert_string_equal(c.principals[0].name, "p");
	wfpb_config_free(&c);
}

/* Log lines carry a UTC time computed without the C library's gmtime (absent from mingw's C11). */
static void
log_prefix_is_rfc3339_utc_or_a_journal_priority(void **state)
{
	char p[64];

	(void)state;
	wfpb__log_prefix(p, sizeof(p), WFPB_LOG_INFO, 0, 0);
	assert_string_equal(p, "1970-01-01T00:00:00.000Z wfpbrokerd info: ");
	wfpb__log_prefix(p, sizeof(p), WFPB_LOG_WARN, 0, 951782400123ull);	/* a leap day */
	assert_string_equal(p, "2000-02-29T00:00:00.123Z wfpbrokerd warning: ");
	wfpb__log_prefix(p, sizeof(p), WFPB_LOG_ERR, 0, 1798761599999ull);
	assert_string_equal(p, "2026-12-31T23:59:59.999Z wfpbrokerd error: ");
	wfpb__log_prefix(p, sizeof(p), WFPB_LOG_ERR, 1, 1798761599999ull);
	assert_string_equal(p, "<3>");
}

/* [listener NAME]: an address, a backlog, the principal that accepts on it; each part checked. */
static void
declared_listeners(void **state)
{
	static const char	pr[] = "[principal proxy]\nuid = 1000\nops = accept\n";
	struct wfpb_config	c;
	struct wfpb_ini_error	err;
	char			text[512];

	(void)state;
	snprintf(text, sizeof(text), "%s[listener web]\naddress = 127.0.0.1:8443\nbacklog = 512\nprincipal = proxy\n"
	    "[listener six]\naddress = [::1]:0\nprincipal = proxy\n", pr);
	assert_int_equal(parse(text, &c, &err), 0);
	assert_int_equal(c.nlisteners, 2);
	assert_string_equal(c.listeners[0].name, "web");
	assert_string_equal(c.listeners[0].principal, "proxy");
	assert_int_equal(c.listeners[0].address.port, 8443);
	assert_int_equal(c.listeners[0].backlog, 512);
	assert_int_equal(c.listeners[1].address.family, WFPB_AF_INET6);
	assert_int_equal(c.listeners[1].backlog, 128);
	wfpb_config_free(&c);
	/* No principal by that name, no address, a bad address, a backlog past 1024, a repeated name. */
	snprintf(text, sizeof(text), "%s[listener web]\naddress = 127.0.0.1:8443\nprincipal = nobody\n", pr);
	assert_int_equal(parse(text, &c, &err), WFPB_E_CONFIG);
	assert_non_null(strstr(err.message, "principal"));
	snprintf(text, sizeof(text), "%s[listener web]\nprincipal = proxy\n", pr);
	assert_int_equal(parse(text, &c, &err), WFPB_E_CONFIG);
	assert_non_null(strstr(err.message, "address"));
	snprintf(text, sizeof(text), "%s[listener web]\naddress = 127.0.0.1\nprincipal = proxy\n", pr);
	assert_int_equal(parse(text, &c, &err), WFPB_E_CONFIG);
	snprintf(text, sizeof(text), "%s[listener web]\naddress = 127.0.0.1:1\nbacklog = 2000\nprincipal = proxy\n", pr);
	assert_int_equal(parse(text, &c, &err), WFPB_E_CONFIG);
	snprintf(text, sizeof(text), "%s[listener web]\naddress = 127.0.0.1:1\nprincipal = proxy\n"
	    "[listener x]\naddress = 127.0.0.1:2\nprincipal = proxy\n[listener web]\nbacklog = 3\n", pr);
	assert_int_equal(parse(text, &c, &err), WFPB_E_CONFIG);
}

/*
 * Group Policy takes precedence over the file: each setting it names replaces the file's, and
 * its admin group becomes the only holder of admin (a principal of the file granted admin keeps
 * its other grants and loses that one); each setting says where it came from.
 */
static void
group_policy_over_the_file(void **state)
{
	static const char		text[] = "[service]\nbackend = sim\naudit_keep_files = 3\n"
					    "[principal ops]\ngroup_sid = S-1-5-32-544\nops = admin stash\n";
	struct wfpb_config		defaults, cfg;
	struct wfpb_ini_error		err;
	struct wfpb_gpo			g;
	struct wfpb_setting_sources	src;
	char				why[256];

	(void)state;
	wfpb_config_defaults(&defaults, "x", "y");
	assert_int_equal(wfpb_config_parse(text, sizeof(text) - 1, &defaults, &cfg, &err), 0);
	memset(&g, 0, sizeof(g));
	/* No policy: the file's and the defaults, each said so. */
	assert_int_equal(wfpb_config_apply_gpo(&cfg, &defaults, &g, &src, why, sizeof(why)), 0);
	assert_int_equal(src.backend, WFPB_FROM_FILE);
	assert_int_equal(src.audit_keep_files, WFPB_FROM_FILE);
	assert_int_equal(src.audit_max_bytes, WFPB_FROM_DEFAULT);
	assert_int_equal(src.admin_group, WFPB_FROM_FILE);
	assert_string_equal(cfg.backend, "sim");
	/* A policy: its values win. */
	snprintf(g.backend, sizeof(g.backend), "wfp");
	snprintf(g.audit_log, sizeof(g.audit_log), "D:\\audit\\wfpbroker.log");
	g.has_keep_files = 1;
	g.audit_keep_files = 30;
	g.has_max_kib = 1;
	g.audit_max_kib = 2048;
	snprintf(g.admin_group, sizeof(g.admin_group), "S-1-5-21-1-2-3-1013");
	assert_int_equal(wfpb_config_apply_gpo(&cfg, &defaults, &g, &src, why, sizeof(why)), 0);
	assert_string_equal(cfg.backend, "wfp");
	assert_string_equal(cfg.audit_log, "D:\\audit\\wfpbroker.log");
	assert_int_equal(cfg.audit_keep_files, 30);
	assert_int_equal(cfg.audit_max_bytes, 2048u * 1024u);
	assert_int_equal(src.backend, WFPB_FROM_POLICY);
	assert_int_equal(src.admin_group, WFPB_FROM_POLICY);
	assert_int_equal(cfg.nprincipals, 2);
	assert_string_equal(cfg.principals[0].group_sid, "S-1-5-21-1-2-3-1013");
	assert_int_equal(cfg.principals[0].perms, WFPB_PERM_ADMIN);
	assert_string_equal(cfg.principals[1].name, "ops");
	assert_int_equal(cfg.principals[1].perms, WFPB_PERM_STASH);
	assert_string_equal(wfpb_setting_source_name(src.backend), "Group Policy");
	/* A backend that is not one is refused, not ignored. */
	snprintf(g.backend, sizeof(g.backend), "ebpf");
	assert_int_equal(wfpb_config_apply_gpo(&cfg, &defaults, &g, &src, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not a backend"));
	wfpb_config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_follow_design),
		cmocka_unit_test(values_are_read),
		cmocka_unit_test(errors_name_their_line),
		cmocka_unit_test(principal_without_matcher_is_an_error),
		cmocka_unit_test(netfilter_proxies_need_a_mark),
		cmocka_unit_test(overlong_line_and_nul_are_errors),
		cmocka_unit_test(missing_file_is_noent),
		cmocka_unit_test(inline_comments_end_a_line),
		cmocka_unit_test(declared_listeners),
		cmocka_unit_test(group_policy_over_the_file),
		cmocka_unit_test(log_prefix_is_rfc3339_utc_or_a_journal_priority),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
