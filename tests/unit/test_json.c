/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JSON writer against a JSON parser (jansson): whatever bytes go in, what
 * comes out parses, and strings come back as given, or, when they were not
 * UTF-8, with U+FFFD in the string and their exact bytes in KEY_hex.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json.h"

/* Runs fn with a writer on a memory stream and parses what it wrote. */
static json_t *
written(void (*fn)(struct wfpb_json *), int *rc, char **text)
{
	struct wfpb_json	j;
	json_error_t		err;
	size_t			len;
	FILE			*f;
	json_t			*v;

	*text = NULL;
	assert_non_null(f = open_memstream(text, &len));
	wfpb_json_init(&j, f);
	fn(&j);
	*rc = wfpb_json_end(&j);
	fclose(f);
	v = json_loadb(*text, len, JSON_REJECT_DUPLICATES, &err);
	if (v == NULL)
		fail_msg("not JSON (%s): %s", err.text, *text);
	return v;
}

static const char hostile[] = "quote\" back\\slash\nnl\ttab\x01\x1f del\x7f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92";

static void
all_kinds(struct wfpb_json *j)
{
	static const uint8_t bytes[] = { 0x00, 0xab, 0xff };

	wfpb_json_obj_begin(j, NULL);
	wfpb_json_str(j, "s", hostile);
	wfpb_json_str(j, "null", NULL);
	wfpb_json_u64(j, "u", (uint64_t)INT64_MAX);	/* jansson, like most parsers, stops at 2^63 */
	wfpb_json_i64(j, "i", INT64_MIN);
	wfpb_json_bool(j, "t", 1);
	wfpb_json_hex(j, "h", bytes, sizeof(bytes));
	wfpb_json_arr_begin(j, "a");
	wfpb_json_str(j, NULL, "x");
	wfpb_json_obj_begin(j, NULL);
	wfpb_json_arr_begin(j, "empty");
	wfpb_json_arr_end(j);
	wfpb_json_obj_end(j);
	wfpb_json_arr_end(j);
	wfpb_json_obj_end(j);
}

static void
every_kind_parses_and_strings_round_trip(void **state)
{
	char	*text;
	int	rc;
	json_t	*v = written(all_kinds, &rc, &text);

	(void)state;
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(v, "s")), hostile);
	assert_null(json_object_get(v, "s_hex"));	/* valid UTF-8: no hex twin */
	assert_true(json_is_null(json_object_get(v, "null")));
	assert_string_equal(json_string_value(json_object_get(v, "h")), "00abff");
	assert_true(json_is_true(json_object_get(v, "t")));
	assert_int_equal(json_array_size(json_object_get(v, "a")), 2);
	assert_non_null(strstr(text, "\"u\":9223372036854775807"));
	assert_non_null(strstr(text, "\"i\":-9223372036854775808"));
	assert_int_equal(text[strlen(text) - 1], '\n');
	json_decref(v);
	free(text);
}

/* An image path with a high byte (Latin-1 é), an overlong '/', a surrogate, a truncated sequence. */
static const char not_utf8[] = "/opt/caf\xe9/\xc0\xaf\xed\xa0\x80x\xe2\x82";

static void
invalid(struct wfpb_json *j)
{
	wfpb_json_obj_begin(j, NULL);
	wfpb_json_str(j, "image", not_utf8);
	wfpb_json_arr_begin(j, "list");
	wfpb_json_str(j, NULL, "\xff");
	wfpb_json_arr_end(j);
	wfpb_json_obj_end(j);
}

static void
bytes_that_are_not_utf8_are_replaced_and_kept_in_hex(void **state)
{
	char		*text, hex[2 * sizeof(not_utf8) + 1];
	int		rc;
	size_t		i;
	json_t		*v = written(invalid, &rc, &text);

	(void)state;
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(v, "image")),
	    "/opt/caf\xef\xbf\xbd/\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx\xef\xbf\xbd\xef\xbf\xbd");
	for (i = 0; i < sizeof(not_utf8) - 1; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)not_utf8[i]);
	assert_string_equal(json_string_value(json_object_get(v, "image_hex")), hex);
	assert_string_equal(json_string_value(json_array_get(json_object_get(v, "list"), 0)), "\xef\xbf\xbd");
	json_decref(v);
	free(text);
}

static void
unbalanced(struct wfpb_json *j)
{
	wfpb_json_obj_begin(j, NULL);
	wfpb_json_u64(j, NULL, 1);	/* a member without a key */
	wfpb_json_obj_end(j);
}

static void
misuse_is_an_error_not_invalid_output(void **state)
{
	struct wfpb_json	j;
	char			*text = NULL;
	size_t			len;
	FILE			*f;
	int			i;

	(void)state;
	assert_non_null(f = open_memstream(&text, &len));
	wfpb_json_init(&j, f);
	unbalanced(&j);
	assert_int_equal(wfpb_json_end(&j), -1);
	wfpb_json_init(&j, f);
	for (i = 0; i < WFPB_JSON_DEPTH + 2; i++)
		wfpb_json_arr_begin(&j, NULL);
	assert_int_equal(wfpb_json_end(&j), -1);
	wfpb_json_init(&j, f);
	wfpb_json_obj_end(&j);
	assert_int_equal(wfpb_json_end(&j), -1);
	fclose(f);
	free(text);
}

static void
utf8_sequences_are_judged_strictly(void **state)
{
	(void)state;
	assert_int_equal(wfpb_utf8_seq((const unsigned char *)"a", 1), 1);
	assert_int_equal(wfpb_utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);
	assert_int_equal(wfpb_utf8_seq((const unsigned char *)"\xc3\xa9", 1), 0);	/* cut short */
	assert_int_equal(wfpb_utf8_seq((const unsigned char *)"\xc0\x80", 2), 0);	/* overlong NUL */
	assert_int_equal(wfpb_utf8_seq((const unsigned char *)"\xe0\x80\xaf", 3), 0);	/* overlong '/' */
	assert_int_equal(wfpb_utf8_seq((const unsigned char *)"\xed\xa0\x80", 3), 0);	/* surrogate */
	assert_int_equal(wfpb_utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);	/* > U+10FFFF */
	assert_int_equal(wfpb_utf8_seq((const unsigned char *)"\xf0\x9f\x94\x92", 4), 4);
	assert_int_equal(wfpb_utf8_seq((const unsigned char *)"\x80", 1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_kind_parses_and_strings_round_trip),
		cmocka_unit_test(bytes_that_are_not_utf8_are_replaced_and_kept_in_hex),
		cmocka_unit_test(misuse_is_an_error_not_invalid_output),
		cmocka_unit_test(utf8_sequences_are_judged_strictly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
