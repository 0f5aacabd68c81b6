/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpbctl audit verify-collected FILE... --keys DIR [--json] [--silent-after S]
 *
 * The centre's verifier (docs/AUDIT.md, "Fleet"): reads what a collector stored — exported JSON
 * lines of many hosts, interleaved, repeated — groups them by the audit key they name, matched
 * to one of the *.pub keys in DIR by fingerprint, and proves for each host from each line's
 * "record" (its exact bytes) that the chain is whole: every seq from 1 present (gaps named as
 * ranges), each record's prev_hash the hash of the one before (a break names the seq), every
 * checkpoint's signature good under that host's key, no seq with two different records (a
 * fork), and the line's readable fields those of its record (a field altered on the way).
 * It says how long ago each host's last checkpoint was; past --silent-after seconds that
 * host is silent. Exit 0 only when every host is whole and every line belongs to a known key.
 */
#ifdef _WIN32
#include <windows.h>
#else
#include <dirent.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "audit.h"
#include "audit_cmd.h"
#include "fileio.h"
#include "json.h"
#include "keyfile.h"
#include "num.h"
#include "wfpbroker.pb-c.h"

#define KEYS_MAX	4096u

struct key {
	char	name[256];
	uint8_t	pub[32], fp[32];
};

struct entry {
	unsigned	key;		/* index into keys */
	uint64_t	seq;
	uint8_t		hash[32];	/* BLAKE2b-256 of the framed record */
	uint8_t		prev[32];
	int		has_prev;
	int		checkpoint;
	int		sig_ok;		/* checkpoints: the signature verified */
	int		mismatch;	/* the line's fields disagree with its record */
	uint64_t	time_ms;
	char		where[96];	/* FILE:LINE */
};

struct host {
	char		name[128];	/* the "host" last seen for the key */
	unsigned long	lines, records, gaps, breaks, bad_sigs, forks, mismatches;
	uint64_t	first, last, last_checkpoint_ms, missing;
};

static struct key	keys[KEYS_MAX];
static unsigned		nkeys;

/* Loads every *.pub in dir that holds one 32-byte key: the hosts' audit keys. */
static int
load_keys(const char *dir)
{
	char path[4096];

#ifdef _WIN32
	WIN32_FIND_DATAA	fd;
	HANDLE			h;

	snprintf(path, sizeof(path), "%s\\*.pub", dir);
	if ((h = FindFirstFileA(path, &fd)) == INVALID_HANDLE_VALUE)
		return 0;
	do {
		const char *n = fd.cFileName;
#else
	struct dirent	*de;
	DIR		*d = opendir(dir);

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		const char	*n = de->d_name;
		size_t		l = strlen(n);

		if (l < 5 || strcmp(n + l - 4, ".pub") != 0)
			continue;
#endif
		if (nkeys >= KEYS_MAX)
			break;
		snprintf(path, sizeof(path), "%s/%s", dir, n);
		if (wfpb_keyfile_load_public(path, keys[nkeys].pub) != 0)
			continue;
		snprintf(keys[nkeys].name, sizeof(keys[nkeys].name), "%s", n);
		crypto_generichash(keys[nkeys].fp, 32, keys[nkeys].pub, 32, NULL, 0);
		nkeys++;
#ifdef _WIN32
	} while (FindNextFileA(h, &fd));
	FindClose(h);
#else
	}
	closedir(d);
#endif
	return 0;
}

/*
 * The value of a member of the JSON object that starts at obj's first '{': a string's raw
 * text (escapes left as they are, quotes not included), a number's digits, or an object's
 * or array's whole text with its brackets, as [*v, *e). A small reader for the lines this
 * project writes, strict enough that a mangled line is refused rather than guessed at.
 * 0, or -1 when absent.
 */
static int
find_member(const char *obj, const char *key, const char **v, const char **e)
{
	const char	*p = strchr(obj, '{');
	size_t		klen = strlen(key);
	int		depth = 0;

	if (p == NULL)
		return -1;
	for (; *p != '\0'; p++) {
		if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (--depth == 0)
				return -1;	/* the end of obj */
		} else if (*p == '"') {
			const char *s = ++p;

			while (*p != '\0' && *p != '"')
				p += (*p == '\\' && p[1] != '\0') ? 2 : 1;
			if (*p == '\0')
				return -1;
			if (depth != 1 || (size_t)(p - s) != klen || memcmp(s, key, klen) != 0 || p[1] != ':')
				continue;
			s = p + 2;
			if (*s == '"') {
				for (p = ++s; *p != '\0' && *p != '"'; p += (*p == '\\' && p[1] != '\0') ? 2 : 1)
					;
				if (*p != '"')
					return -1;
			} else if (*s == '{' || *s == '[') {
				int d = 0;

				for (p = s; *p != '\0'; p++) {
					if (*p == '"') {
						for (p++; *p != '\0' && *p != '"';)
							p += (*p == '\\' && p[1] != '\0') ? 2 : 1;
						if (*p == '\0')
							return -1;
					} else if (*p == '{' || *p == '[') {
						d++;
					} else if ((*p == '}' || *p == ']') && --d == 0) {
						p++;
						break;
					}
				}
				if (d != 0)
					return -1;
			} else {
				for (p = s; (*p >= '0' && *p <= '9') || *p == '-'; p++)
					;
			}
			*v = s;
			*e = p;
			return 0;
		}
	}
	return -1;
}

/* As find_member, copied into out (NUL-terminated); -1 when absent or longer than cap - 1. */
static int
member(const char *obj, const char *key, char *out, size_t cap)
{
	const char	*v, *e;
	size_t		n;

	if (find_member(obj, key, &v, &e) != 0 || (n = (size_t)(e - v)) >= cap)
		return -1;
	memcpy(out, v, n);
	out[n] = '\0';
	return 0;
}

/*
 * A string member of obj is what the writer makes of s (s NULL: the member is absent or
 * null), and, when s is not UTF-8, its KEY_hex twin holds s's exact bytes.
 */
static int
same_string(const char *obj, const char *key, const char *s)
{
	static char	want[6 * 8192 + 16], hex[2 * 8192 + 1];	/* "\\u00XX" is the longest escape */
	char		hexkey[64];
	const char	*v, *e;
	size_t		n, len;
	int		lossy;

	if (s == NULL || s[0] == '\0')
		/* absent, "" or null (a value find_member reads as empty) */
		return find_member(obj, key, &v, &e) != 0 || e == v;
	len = strlen(s);
	if (find_member(obj, key, &v, &e) != 0 || (lossy = wfpb_json_escape(s, len, want, sizeof(want), &n)) < 0 ||
	    (size_t)(e - v) != n || memcmp(v, want, n) != 0)
		return 0;
	if (!lossy)
		return 1;
	snprintf(hexkey, sizeof(hexkey), "%s_hex", key);
	if (len > 8192 || find_member(obj, hexkey, &v, &e) != 0 || (size_t)(e - v) != 2 * len)
		return 0;
	sodium_bin2hex(hex, sizeof(hex), (const unsigned char *)s, len);
	return memcmp(v, hex, 2 * len) == 0;
}

/* A number member is x. */
static int
same_u64(const char *obj, const char *key, uint64_t x)
{
	char v[32], want[32];

	snprintf(want, sizeof(want), "%llu", (unsigned long long)x);
	return member(obj, key, v, sizeof(v)) == 0 && strcmp(v, want) == 0;
}

/* A member's raw text is exactly want (a value the writer makes of known ASCII). */
static int
same_text(const char *obj, const char *key, const char *want, size_t n)
{
	const char *v, *e;

	return find_member(obj, key, &v, &e) == 0 && (size_t)(e - v) == n && memcmp(v, want, n) == 0;
}

/* A hex member holds bytes p[0..n); with n 0 it is absent. */
static int
same_hex(const char *obj, const char *key, const uint8_t *p, size_t n)
{
	char		want[2 * 256 + 1];
	const char	*v, *e;

	if (n == 0)
		return find_member(obj, key, &v, &e) != 0;
	if (n > 256)
		return 0;
	sodium_bin2hex(want, sizeof(want), p, n);
	return same_text(obj, key, want, 2 * n);
}

/* The addresses and blob hashes arrays, as the writer makes them: ["a","b"]. */
static int
same_arrays(const char *line, const Wfpbroker__V1__AuditRecord *r)
{
	char	*want, a[64];
	size_t	cap = 3 + r->n_addresses * (sizeof(a) + 3) + r->n_blob_hashes * (2 * 256 + 3), n, i;
	int	ok = 0;

	if ((want = malloc(cap)) == NULL)
		return 0;
	n = (size_t)snprintf(want, cap, "[");
	for (i = 0; i < r->n_addresses; i++) {
		wfpbctl_addr_text(r->addresses[i], a);
		n += (size_t)snprintf(want + n, cap - n, "%s\"%s\"", i ? "," : "", a);
	}
	n += (size_t)snprintf(want + n, cap - n, "]");
	if (!same_text(line, "addresses", want, n))
		goto out;
	n = (size_t)snprintf(want, cap, "[");
	for (i = 0; i < r->n_blob_hashes; i++) {
		if (r->blob_hashes[i].len > 256)
			goto out;
		n += (size_t)snprintf(want + n, cap - n, "%s\"", i ? "," : "");
		sodium_bin2hex(want + n, cap - n, r->blob_hashes[i].data, r->blob_hashes[i].len);
		n += 2 * r->blob_hashes[i].len;
		n += (size_t)snprintf(want + n, cap - n, "\"");
	}
	n += (size_t)snprintf(want + n, cap - n, "]");
	ok = same_text(line, "blob_hashes", want, n);
out:
	free(want);
	return ok;
}

/*
 * The line's readable fields must be its record's, every one the record gives; only what the
 * exporting host adds (host, audit_key, principal.user_name) cannot be checked against it.
 */
static int
agrees(const char *line, const Wfpbroker__V1__AuditRecord *r)
{
	char v[256], when[WFPB_RFC3339_LEN];

	if (!same_u64(line, "seq", r->seq) || !same_u64(line, "time_unix_ms", r->time_unix_ms) ||
	    !same_u64(line, "session_id", r->session_id) || !same_u64(line, "request_id", r->request_id) ||
	    !same_u64(line, "latency_us", r->latency_us))
		return 0;
	wfpb_rfc3339(r->time_unix_ms, when);
	if (!same_text(line, "time", when, strlen(when)) || !same_hex(line, "prev_hash", r->prev_hash.data,
	    r->prev_hash.len) || !same_hex(line, "signature", r->signature.data, r->signature.len) ||
	    !same_arrays(line, r))
		return 0;
	if (member(line, "kind", v, sizeof(v)) != 0 ||
	    strcmp(v, wfpbctl_enum_name(&wfpbroker__v1__audit_kind__descriptor, r->kind)) != 0)
		return 0;
	if (member(line, "status", v, sizeof(v)) != 0 ||
	    strcmp(v, wfpbctl_enum_name(&wfpbroker__v1__status_code__descriptor, r->status)) != 0)
		return 0;
	if (!same_string(line, "op", r->op) || !same_string(line, "message", r->message))
		return 0;
	if (r->principal != NULL) {
		const char *pv, *pe;

		/* The principal's object, searched as a line of its own: its members are at its top. */
		if (find_member(line, "principal", &pv, &pe) != 0 || *pv != '{')
			return 0;
		if (!same_string(pv, "user", r->principal->user) || !same_string(pv, "image", r->principal->image) ||
		    !same_string(pv, "name", r->principal->name) || !same_u64(pv, "pid", r->principal->pid) ||
		    !same_hex(pv, "key_fingerprint", r->principal->key_fingerprint.data,
		    r->principal->key_fingerprint.len))
			return 0;
	} else {
		const char *pv, *pe;

		if (find_member(line, "principal", &pv, &pe) == 0)
			return 0;	/* a principal the record does not have */
	}
	return 1;
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return memcmp(x->hash, y->hash, 32);
}

/* The big-endian length prefix of a framed record. */
static size_t
frame_len(const uint8_t *p)
{
	return ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
}

/*
 * Reads one collected file; appends its entries. Lines that are not ours are counted in *junk,
 * audit lines whose record or key does not decode in *damaged.
 */
static int
read_collected(const char *file, struct entry **es, size_t *n, size_t *cap, unsigned long *junk, unsigned long *damaged,
    unsigned long *unknown, struct host *hosts)
{
	static char	rec_hex[2 * (WFPB_AUDIT_RECORD_MAX + 4) + 1];
	uint8_t		*buf, *framed = NULL;
	size_t		len, off, lineno = 0, flen;
	char		key_hex[65], host[128];
	int		os_err;

	if (wfpb__file_read_all(file, WFPB_AUDIT_FILE_MAX, &buf, &len, &os_err) != 0) {
		fprintf(stderr, "wfpbctl: cannot read %s (OS error %d)\n", file, os_err);
		return -1;
	}
	if ((framed = malloc(WFPB_AUDIT_RECORD_MAX + 4)) == NULL) {
		free(buf);
		return -1;
	}
	for (off = 0; off < len;) {
		char				*line = (char *)buf + off, *nl = memchr(line, '\n', len - off);
		Wfpbroker__V1__AuditRecord	*r;
		uint8_t				fp[32];
		unsigned			k;
		struct entry			*e;
		size_t				bin;

		if (nl == NULL)
			nl = (char *)buf + len;
		*nl = '\0';
		off = (size_t)(nl - (char *)buf) + 1;
		lineno++;
		if (member(line, "record", rec_hex, sizeof(rec_hex)) != 0 || member(line, "audit_key", key_hex,
		    sizeof(key_hex)) != 0) {
			if (line[0] != '\0')
				(*junk)++;
			continue;
		}
		/* An audit line whose record or key is not what one can be was damaged on the way. */
		if (sodium_hex2bin(framed, WFPB_AUDIT_RECORD_MAX + 4, rec_hex, strlen(rec_hex), NULL, &flen,
		    NULL) != 0 ||
		    sodium_hex2bin(fp, 32, key_hex, strlen(key_hex), NULL, &bin, NULL) != 0 || bin != 32 || flen < 4 ||
		    frame_len(framed) != flen - 4 ||
		    (r = wfpbroker__v1__audit_record__unpack(NULL, flen - 4, framed + 4)) == NULL) {
			(*damaged)++;
			continue;
		}
		for (k = 0; k < nkeys && memcmp(keys[k].fp, fp, 32) != 0; k++)
			;
		if (k == nkeys) {
			(*unknown)++;
			wfpbroker__v1__audit_record__free_unpacked(r, NULL);
			continue;
		}
		if (*n == *cap) {
			*cap = *cap ? 2 * *cap : 4096;
			if ((*es = realloc(*es, *cap * sizeof(**es))) == NULL)
				return -1;
		}
		e = &(*es)[(*n)++];
		memset(e, 0, sizeof(*e));
		e->key = k;
		e->seq = r->seq;
		e->time_ms = r->time_unix_ms;
		wfpb__audit_chain_hash(framed, flen, e->hash);
		if (r->prev_hash.len == 32) {
			memcpy(e->prev, r->prev_hash.data, 32);
			e->has_prev = 1;
		}
		e->mismatch = !agrees(line, r);
		if (r->kind == WFPBROKER__V1__AUDIT_KIND__AUDIT_CHECKPOINT) {
			uint8_t	*sb = NULL;
			size_t	sl = 0;

			e->checkpoint = 1;
			if (r->signature.len == crypto_sign_BYTES && wfpb__audit_signed_bytes(r, &sb, &sl) == 0)
				e->sig_ok = crypto_sign_verify_detached(r->signature.data, sb, sl, keys[k].pub) == 0;
			free(sb);
		}
		snprintf(e->where, sizeof(e->where), "%.80s:%zu", file, lineno);
		if (member(line, "host", host, sizeof(host)) == 0)
			snprintf(hosts[k].name, sizeof(hosts[k].name), "%s", host);
		hosts[k].lines++;
		wfpbroker__v1__audit_record__free_unpacked(r, NULL);
	}
	free(framed);
	free(buf);
	return 0;
}

static void
report_problem(int json, struct wfpb_json *j, const char *kind, const char *fmt, ...)
{
	char	text[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (json) {
		wfpb_json_obj_begin(j, NULL);
		wfpb_json_str(j, "kind", kind);
		wfpb_json_str(j, "detail", text);
		wfpb_json_obj_end(j);
	} else {
		printf("    %s: %s\n", kind, text);
	}
}

int
wfpbctl_verify_collected(int argc, char **argv)
{
	static struct host	hosts[KEYS_MAX];
	struct entry		*es = NULL;
	struct wfpb_json	j;
	const char		*dir = NULL;
	size_t			n = 0, cap = 0, i, a, b;
	unsigned long		junk = 0, damaged = 0, unknown = 0, bad_hosts = 0;
	uint32_t		silent_after = 0;
	uint64_t		now_ms = (uint64_t)time(NULL) * 1000u;
	unsigned		k;
	int			json = 0, nfiles = 0;

	for (i = 0; i < (size_t)argc; i++) {
		if (strcmp(argv[i], "--keys") == 0 && i + 1 < (size_t)argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--silent-after") == 0 && i + 1 < (size_t)argc) {
			if (wfpb_parse_u32(argv[++i], 1, UINT32_MAX, &silent_after) != 0) {
				fprintf(stderr, "wfpbctl: --silent-after %s: not a number of seconds\n", argv[i]);
				return 2;
			}
		} else if (argv[i][0] == '-')
			return 2;
		else
			nfiles++;
	}
	if (dir == NULL || nfiles == 0)
		return 2;
	nkeys = 0;
	memset(hosts, 0, sizeof(hosts));
	if (load_keys(dir) != 0 || nkeys == 0) {
		fprintf(stderr, "wfpbctl: no audit keys (*.pub) in %s\n", dir);
		return 1;
	}
	for (i = 0; i < (size_t)argc; i++) {
		if (strcmp(argv[i], "--keys") == 0 || strcmp(argv[i], "--silent-after") == 0) {
			i++;
			continue;
		}
		if (argv[i][0] != '-' && read_collected(argv[i], &es, &n, &cap, &junk, &damaged, &unknown, hosts) != 0)
			return 1;
	}
	qsort(es, n, sizeof(*es), cmp_entry);
	if (json) {
		wfpb_json_init(&j, stdout);
		wfpb_json_obj_begin(&j, NULL);
		wfpb_json_arr_begin(&j, "hosts");
	}
	for (k = 0; k < nkeys; k++) {
		struct host	*h = &hosts[k];
		uint64_t	expect = 1;
		size_t		prev = (size_t)-1;

		for (a = 0; a < n && es[a].key != k; a++)
			;
		for (b = a; b < n && es[b].key == k; b++)
			;
		if (a == b)
			continue;	/* a key nothing was collected for */
		if (json) {
			wfpb_json_obj_begin(&j, NULL);
			wfpb_json_str(&j, "host", h->name);
			wfpb_json_str(&j, "key", keys[k].name);
			wfpb_json_hex(&j, "audit_key", keys[k].fp, 32);
			wfpb_json_arr_begin(&j, "problems");
		} else {
			printf("%s (key %s):\n", h->name[0] ? h->name : "?", keys[k].name);
		}
		h->first = es[a].seq;
		for (i = a; i < b; i++) {
			struct entry *e = &es[i];

			if (prev != (size_t)-1 && es[prev].seq == e->seq) {
				if (memcmp(es[prev].hash, e->hash, 32) != 0) {
					h->forks++;
					report_problem(json, &j, "fork", "seq %llu: two different records (%s, %s)",
					    (unsigned long long)e->seq, es[prev].where, e->where);
				}
				continue;	/* a duplicate: the shipper repeated it */
			}
			h->records++;
			if (e->mismatch) {
				h->mismatches++;
				report_problem(json, &j, "altered",
				    "seq %llu (%s): the line's fields are not its record's",
				    (unsigned long long)e->seq, e->where);
			}
			if (e->seq > expect) {
				h->gaps++;
				h->missing += e->seq - expect;
				report_problem(json, &j, "gap", "seq %llu..%llu missing", (unsigned long long)expect,
				    (unsigned long long)(e->seq - 1));
			} else if (prev != (size_t)-1 && (!e->has_prev || memcmp(e->prev, es[prev].hash, 32) != 0)) {
				h->breaks++;
				report_problem(json, &j, "break",
				    "seq %llu (%s): prev_hash is not the hash of seq %llu",
				    (unsigned long long)e->seq, e->where, (unsigned long long)es[prev].seq);
			}
			if (e->checkpoint && !e->sig_ok) {
				h->bad_sigs++;
				report_problem(json, &j, "signature",
				    "checkpoint seq %llu (%s) does not verify with %s",
				    (unsigned long long)e->seq, e->where, keys[k].name);
			} else if (e->checkpoint) {
				h->last_checkpoint_ms = e->time_ms;
			}
			expect = e->seq + 1;
			prev = i;
		}
		h->last = es[prev].seq;
		{
			uint64_t	since = h->last_checkpoint_ms ? (now_ms > h->last_checkpoint_ms ?
			    (now_ms - h->last_checkpoint_ms) / 1000u : 0) : 0;
			int		silent = silent_after && (!h->last_checkpoint_ms || since > silent_after);
			int		whole = !h->gaps && !h->breaks && !h->bad_sigs && !h->forks &&
			    !h->mismatches;

			if (!whole)
				bad_hosts++;
			if (json) {
				wfpb_json_arr_end(&j);
				wfpb_json_u64(&j, "lines", h->lines);
				wfpb_json_u64(&j, "records", h->records);
				wfpb_json_u64(&j, "first_seq", h->first);
				wfpb_json_u64(&j, "last_seq", h->last);
				wfpb_json_u64(&j, "missing", h->missing);
				wfpb_json_u64(&j, "gaps", h->gaps);
				wfpb_json_u64(&j, "breaks", h->breaks);
				wfpb_json_u64(&j, "bad_signatures", h->bad_sigs);
				wfpb_json_u64(&j, "forks", h->forks);
				wfpb_json_u64(&j, "altered", h->mismatches);
				if (h->last_checkpoint_ms)
					wfpb_json_u64(&j, "seconds_since_checkpoint", since);
				wfpb_json_bool(&j, "silent", silent);
				wfpb_json_bool(&j, "whole", whole);
				wfpb_json_obj_end(&j);
			} else {
				char ago[48];

				if (h->last_checkpoint_ms)
					snprintf(ago, sizeof(ago), "%llu s ago", (unsigned long long)since);
				else
					snprintf(ago, sizeof(ago), "never");
				printf("  %s: %lu records (%lu lines), seq %llu..%llu; %lu gaps (%llu missing), "
				    "%lu breaks, %lu bad signatures, %lu forks, %lu altered; last checkpoint %s%s\n",
				    whole ? "whole" : "NOT WHOLE",
				    h->records, h->lines, (unsigned long long)h->first, (unsigned long long)h->last,
				    h->gaps,
				    (unsigned long long)h->missing, h->breaks, h->bad_sigs, h->forks, h->mismatches,
				    ago,
				    silent ? " (SILENT)" : "");
			}
		}
	}
	if (json) {
		wfpb_json_arr_end(&j);
		wfpb_json_u64(&j, "unknown_key_lines", unknown);
		wfpb_json_u64(&j, "unreadable_lines", junk);
		wfpb_json_u64(&j, "damaged_lines", damaged);
		wfpb_json_obj_end(&j);
		(void)wfpb_json_end(&j);
	} else {
		if (unknown)
			printf("%lu lines name an audit key not in %s\n", unknown, dir);
		if (junk)
			printf("%lu lines are not exported audit records (ignored)\n", junk);
		if (damaged)
			printf("%lu lines carry a record or key that does not decode (damaged)\n", damaged);
	}
	free(es);
	return bad_hosts || unknown || damaged ? 1 : 0;
}
