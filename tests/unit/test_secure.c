/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The judgement of the service's state directory and key files
 * (service/win/secure_win.c) on injected owner/DACL facts — a standard user
 * who made %ProgramData%\wfpbroker first, a DACL that lets Users write, a
 * NULL DACL, a readable private key — which Wine cannot show (it synthesises
 * owners and DACLs from Unix modes); and the facts reader on a real
 * directory under Wine.
 */
#include <windows.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "secure_win.h"

#define SELF		"S-1-5-18"
#define USER		"S-1-5-21-1004336348-1177238915-682003330-1001"
#define FA		0x001f01ffu	/* FILE_ALL_ACCESS */
#define FRFX		0x001200a9u	/* read and execute */

static void
ace(struct wfpb_sd_facts *f, int allow, uint32_t mask, const char *sid)
{
	struct wfpb_sd_ace *a = &f->aces[f->naces++];

	a->allow = allow;
	a->mask = mask;
	strcpy(a->sid, sid);
}

/* What the service creates: owner Administrators; SYSTEM and Administrators full, Users read. */
static void
ours(struct wfpb_sd_facts *f)
{
	memset(f, 0, sizeof(*f));
	strcpy(f->owner, "S-1-5-32-544");
	f->has_dacl = 1;
	ace(f, 1, FA, "S-1-5-18");
	ace(f, 1, FA, "S-1-5-32-544");
	ace(f, 1, FRFX, "S-1-5-32-545");
}

static void
the_services_own_directory_is_trusted(void **state)
{
	struct wfpb_sd_facts	f;
	char			why[256];

	(void)state;
	ours(&f);
	assert_int_equal(wfpb__sd_trusted(&f, SELF, 0, why, sizeof(why)), WFPB_SD_OK);
	/* Deny ACEs only take away; OWNER RIGHTS is the (trusted) owner. */
	ace(&f, 0, FA, "S-1-1-0");
	ace(&f, 1, FA, "S-1-3-4");
	assert_int_equal(wfpb__sd_trusted(&f, SELF, 0, why, sizeof(why)), WFPB_SD_OK);
}

static void
a_directory_a_standard_user_made_first_is_refused(void **state)
{
	struct wfpb_sd_facts	f;
	char			why[256];

	(void)state;
	ours(&f);
	strcpy(f.owner, USER);
	assert_int_equal(wfpb__sd_trusted(&f, SELF, 0, why, sizeof(why)), WFPB_SD_OWNER);
	assert_non_null(strstr(why, USER));
	/* The same owner is the service itself when it runs as that user (under Wine, every process does). */
	assert_int_equal(wfpb__sd_trusted(&f, USER, 0, why, sizeof(why)), WFPB_SD_OK);
}

static void
a_dacl_that_lets_others_modify_is_refused(void **state)
{
	static const uint32_t	masks[] = { 0x2 /* FILE_WRITE_DATA, or add a file */, 0x4 /* add a subdirectory */,
				    0x40 /* delete a child */, 0x10000 /* DELETE */, 0x40000 /* WRITE_DAC */,
				    0x80000 /* WRITE_OWNER */, 0x40000000 /* GENERIC_WRITE */, 0x10000000 /* GENERIC_ALL */ };
	struct wfpb_sd_facts	f;
	char			why[256];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		ours(&f);
		ace(&f, 1, masks[i], "S-1-5-11");	/* Authenticated Users */
		assert_int_equal(wfpb__sd_trusted(&f, SELF, 0, why, sizeof(why)), WFPB_SD_WRITERS);
		assert_non_null(strstr(why, "S-1-5-11"));
	}
	ours(&f);
	f.has_dacl = 0;
	assert_int_equal(wfpb__sd_trusted(&f, SELF, 0, why, sizeof(why)), WFPB_SD_WRITERS);
	ours(&f);
	ace(&f, 1, GENERIC_ALL, "?");	/* an ACE kind the reader does not understand */
	assert_int_equal(wfpb__sd_trusted(&f, SELF, 0, why, sizeof(why)), WFPB_SD_WRITERS);
	ours(&f);
	f.truncated = 1;
	assert_int_equal(wfpb__sd_trusted(&f, SELF, 0, why, sizeof(why)), WFPB_SD_WRITERS);
}

static void
a_private_key_others_may_read_is_flagged(void **state)
{
	struct wfpb_sd_facts	f;
	char			why[256];

	(void)state;
	ours(&f);
	assert_int_equal(wfpb__sd_trusted(&f, SELF, 0, why, sizeof(why)), WFPB_SD_OK);
	assert_int_equal(wfpb__sd_trusted(&f, SELF, 1, why, sizeof(why)), WFPB_SD_READERS);
}

/*
 * A standard user made %ProgramData%\wfpbroker a junction to a directory SYSTEM
 * owns: judged by what it leads to, it looked like the service's own; the user
 * owns the junction and may re-point it after the service wrote its keys.
 */
static void
a_junction_is_refused_whatever_it_leads_to(void **state)
{
	struct wfpb_sd_facts	f;
	char			why[256];

	(void)state;
	ours(&f);		/* what the target's descriptor says */
	f.reparse = 1;
	assert_int_equal(wfpb__sd_trusted(&f, SELF, 0, why, sizeof(why)), WFPB_SD_REPARSE);
	assert_non_null(strstr(why, "reparse point"));
}

/* The reader on a real directory: an owner and ACEs come back (Wine makes them up from the Unix mode). */
static void
facts_of_a_real_directory(void **state)
{
	struct wfpb_sd_facts	f;
	char			self[WFPB_SID_MAX], dir[MAX_PATH + 32];

	(void)state;
	assert_int_equal(wfpb__sd_self(self, sizeof(self)), 0);
	assert_int_equal(strncmp(self, "S-1-", 4), 0);
	GetTempPathA(MAX_PATH, dir);
	strcat(dir, "wfpb-secure-test");
	(void)CreateDirectoryA(dir, NULL);
	assert_int_equal(wfpb__sd_facts_read(dir, &f), 0);
	assert_int_equal(strncmp(f.owner, "S-1-", 4), 0);
	assert_true(f.has_dacl);
	assert_true(f.naces > 0);
	RemoveDirectoryA(dir);
	strcat(dir, "-absent");
	assert_int_equal(wfpb__sd_facts_read(dir, &f), ERROR_FILE_NOT_FOUND);
}

/*
 * The service keeps only the privileges it uses: on a copy of this process's
 * token (under Wine an administrator's, with many), every other privilege is
 * removed, not merely disabled, and the one kept is still there.
 */
static void
a_token_keeps_only_what_it_names(void **state)
{
	TOKEN_PRIVILEGES	*tp;
	HANDLE			self, tok;
	DWORD			len = 0, nlen;
	wchar_t			name[64];
	unsigned		removed = 0;
	BYTE			buf[4096];

	(void)state;
	assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_DUPLICATE | TOKEN_QUERY, &self));
	assert_true(DuplicateTokenEx(self, TOKEN_QUERY | TOKEN_ADJUST_PRIVILEGES, NULL, SecurityImpersonation,
	    TokenPrimary, &tok));
	tp = (TOKEN_PRIVILEGES *)buf;
	assert_true(GetTokenInformation(tok, TokenPrivileges, tp, sizeof(buf), &len));
	assert_true(tp->PrivilegeCount > 1);
	assert_int_equal(wfpb__token_keep_only(tok, WFPB_PRIVILEGES_KEPT, &removed), 0);
	assert_int_equal(removed, tp->PrivilegeCount - 1);
	assert_true(GetTokenInformation(tok, TokenPrivileges, tp, sizeof(buf), &len));
	assert_int_equal(tp->PrivilegeCount, 1);
	nlen = sizeof(name) / sizeof(name[0]);
	assert_true(LookupPrivilegeNameW(NULL, &tp->Privileges[0].Luid, name, &nlen));
	assert_int_equal(wcscmp(name, L"SeChangeNotifyPrivilege"), 0);
	/* Removed for good: enabling SeDebugPrivilege again is refused. */
	{
		TOKEN_PRIVILEGES en = { 1, { { { 0, 0 }, SE_PRIVILEGE_ENABLED } } };

		assert_true(LookupPrivilegeValueW(NULL, L"SeDebugPrivilege", &en.Privileges[0].Luid));
		(void)AdjustTokenPrivileges(tok, FALSE, &en, 0, NULL, NULL);
		assert_int_equal(GetLastError(), ERROR_NOT_ALL_ASSIGNED);
	}
	CloseHandle(tok);
	CloseHandle(self);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_services_own_directory_is_trusted),
		cmocka_unit_test(a_directory_a_standard_user_made_first_is_refused),
		cmocka_unit_test(a_dacl_that_lets_others_modify_is_refused),
		cmocka_unit_test(a_private_key_others_may_read_is_flagged),
		cmocka_unit_test(a_junction_is_refused_whatever_it_leads_to),
		cmocka_unit_test(facts_of_a_real_directory),
		cmocka_unit_test(a_token_keeps_only_what_it_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
