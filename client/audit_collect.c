/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpbctl audit verify-collected FILE... --keys DIR [--json] [--silent-after S] [--tail-max S]
 *     [--window N] [--retired KEYFILE]... [--jobs N]
 *
 * The centre's verifier (docs/AUDIT.md, "At the centre"). Everything in a collected line is
 * untrusted: a collector, a shipper or anyone on a plain-TCP path may have written it. Lines
 * are read as a stream, file after file; memory is bounded by the number of keys and the
 * reorder window, never by the number of lines. For each line naming an audit key in DIR:
 *
 *   - the line must be, byte for byte, what the exporter writes for its record (made again
 *     here by the exporter's own function, wfpbctl_record_json); only the host-added fields
 *     (host, audit_key, principal.user_name) come from the line. Any other difference — a
 *     duplicate member, a space, a field rewritten, bytes after the object — is "altered",
 *     and every copy of a record is checked, not only the first;
 *   - its record joins its host's chain: every seq from 1, each prev_hash the hash of the
 *     record before, checkpoints signed by the host's key, one record per seq. Lines of one
 *     host may arrive out of order by up to --window seqs (4096); a repeat is compared with
 *     the record accepted for its seq while that is within four windows of the newest, and is
 *     "late" after.
 *
 * What follows a host's last valid checkpoint is signed by nothing: it is reported as an
 * unverified tail, never as whole, and fails the run once its oldest record is older than
 * --tail-max seconds (60). Every key in DIR that sent nothing is silent and fails the run,
 * unless named with --retired. Nothing from a line reaches the terminal unescaped; a host is
 * reported under its key file's name, with the host names its lines gave.
 *
 * With --jobs N (POSIX) the files are verified in N processes, file k by part k mod N, for a
 * collector that splits its stream by key (rsyslog's dynaFile, docs/AUDIT.md): every key's
 * lines must then be in one part (else "split", failing), and the parts' verdicts make one
 * report.
 */
#ifdef _WIN32
#include <windows.h>
#else
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "audit.h"
#include "addr.h"
#include "audit_cmd.h"
#include "json.h"
#include "keyfile.h"
#include "num.h"
#include "wfpbroker.pb-c.h"

#define KEYS_MAX	4096u
#define RETIRED_MAX	256u
#define LINE_MAX_BYTES	(2u * (WFPB_AUDIT_RECORD_MAX + 4u) + 64u * 1024u)	/* longer: not one of ours */
#define WINDOW_DEFAULT	4096u
#define WINDOW_MAX	(1u << 20)
#define TAIL_MAX_DEFAULT 60u
#define HOST_NAMES_MAX	4u	/* distinct host values kept per key for the report */
#define HOST_NAME_LEN	128u
#define PROBLEMS_SHOWN	20u	/* per host and kind; the rest are counted */
#define JOBS_MAX	64u

/* Where a line was: which file of the command line, which line of it. */
struct where {
	unsigned	file;
	uint64_t	line;
};

/* A record waiting in the reorder window, or accepted (the window's recent past). */
struct slot {
	uint64_t	seq;		/* 0: empty */
	uint8_t		hash[32];	/* BLAKE2b-256 of the framed record */
	uint8_t		prev[32];
	uint64_t	time_ms;
	uint64_t	lost;		/* records the broker says it could not write before this one */
	struct where	at;
	unsigned char	has_prev, checkpoint, sig_ok;
};

/*
 * An accepted record, remembered while within REPEATS_PER_WINDOW windows of the newest: what a
 * later copy must match (the first 16 bytes of its hash: 2^128 work to forge a copy that passes).
 */
struct seen {
	uint64_t	seq;
	uint8_t		hash[16];
};
#define REPEATS_PER_WINDOW	4u	/* a follower that resends from its cursor lags by thousands */

enum problem { P_GAP, P_BREAK, P_SIGNATURE, P_FORK, P_ALTERED, P_LATE, P_LOST, P_HOSTS, P_KINDS };
static const char *const problem_name[P_KINDS] = { "gap", "break", "signature", "fork", "altered", "late",
	"lost", "hosts" };

struct host {
	char		file[256];	/* the key's file name in DIR: how the host is reported */
	uint8_t		pub[32], fp[32];
	int		retired;
	unsigned long	lines, records, missing;
	uint64_t	lost;		/* records the broker says it could not write */
	unsigned long	count[P_KINDS];
	uint64_t	first, next;	/* first seq seen accepted; the seq awaited next (0: none yet) */
	uint8_t		last_hash[32];	/* of record next - 1 */
	int		linked;		/* last_hash holds: the next record's prev_hash is checked */
	uint64_t	gap_from;	/* a run of missing seqs being passed over, or 0 */
	uint64_t	checkpoint_seq, checkpoint_ms;	/* the last valid checkpoint */
	uint64_t	tail_first_ms;	/* the oldest time of a record after it */
	struct slot	*pend;		/* [window]: records ahead of next, by seq % window (lazily) */
	unsigned	npend;
	struct seen	*seen;		/* [repeats]: the last accepted records, by seq % repeats */
	char		names[HOST_NAMES_MAX][HOST_NAME_LEN];	/* distinct "host" values, escaped */
	unsigned	nnames;
	int		more_names;
	struct wfpb_json *jp;		/* --json: problems are written here as they are found */
};

struct run {
	struct host	*hosts;
	unsigned	nhosts;
	const char	**files;
	unsigned	nfiles;
	uint32_t	window;
	uint32_t	repeats;	/* how far back a repeat is still compared: REPEATS_PER_WINDOW windows */
	int		json;
	int		part;		/* one part of --jobs: a key without lines here is another part's */
	struct wfpb_json j;		/* the report (--json) */
	struct wfpb_json line;		/* a line made again from its record */
	uint8_t		*framed;
	unsigned long	junk, damaged, unknown, too_long;
};

/*
 * Writes s (n bytes) so that nothing in it can act on a terminal: printable ASCII as it is,
 * backslash and every other byte as \xNN. out holds 4 * n + 1.
 */
static void
safe_text(const char *s, size_t n, char *out)
{
	static const char	hex[] = "0123456789abcdef";
	size_t			i, k = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[k++] = (char)c;
		} else {
			out[k++] = '\\';
			out[k++] = 'x';
			out[k++] = hex[c >> 4];
			out[k++] = hex[c & 15];
		}
	}
	out[k] = '\0';
}

/* Loads every *.pub in dir that holds one 32-byte key: the hosts' audit keys. */
static int
load_keys(struct run *rn, const char *dir)
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
		struct host *hp;

		if (rn->nhosts >= KEYS_MAX)
			break;
		hp = &rn->hosts[rn->nhosts];
		snprintf(path, sizeof(path), "%s/%s", dir, n);
		if (wfpb_keyfile_load_public(path, hp->pub) != 0)
			continue;
		snprintf(hp->file, sizeof(hp->file), "%s", n);
		crypto_generichash(hp->fp, 32, hp->pub, 32, NULL, 0);
		rn->nhosts++;
#ifdef _WIN32
	} while (FindNextFileA(h, &fd));
	FindClose(h);
#else
	}
	closedir(d);
#endif
	return 0;
}

/* A value a line gives, as [v, e): a string's text between its quotes, a number's digits. */
struct span {
	const char	*v, *e;
};

/* The members a line is read for (the first of each name: a second one only fails the comparison). */
enum { F_RECORD, F_AUDIT_KEY, F_HOST, F_HOST_HEX, F_USER_NAME, F_USER_NAME_HEX, F_COUNT };
static const struct {
	const char	*name;
	size_t		len;
	int		in_principal;
} wanted[F_COUNT] = {
	{ "record", 6, 0 }, { "audit_key", 9, 0 }, { "host", 4, 0 }, { "host_hex", 8, 0 },
	{ "user_name", 9, 1 }, { "user_name_hex", 13, 1 },
};

/* The end of the string whose text starts at p (the closing quote), or NULL. */
static const char *
string_end(const char *p, const char *end)
{
	const char	*q;
	size_t		bs;

	for (;;) {
		if ((q = memchr(p, '"', (size_t)(end - p))) == NULL)
			return NULL;
		for (bs = 0; q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\'; bs++)
			;
		if (bs % 2 == 0)
			return q;
		p = q + 1;
	}
}

/*
 * One pass over the JSON object that starts the line, noting where the members it is read
 * for are: at its top level, or (user_name) at the top level of its "principal" object. Only
 * picks the values a line claims; the line is then judged whole by making it again
 * (line_is_exact), so a value picked from a malformed line only makes that comparison fail.
 */
static void
scan_line(const char *line, const char *end, struct span f[F_COUNT])
{
	const char	*p = line, *s, *q;
	int		depth = 0, principal_depth = 0, i;

	memset(f, 0, F_COUNT * sizeof(f[0]));
	if (p >= end || *p != '{')
		return;
	while (p < end) {
		char c = *p;

		if (c == '{' || c == '[') {
			depth++;
			p++;
		} else if (c == '}' || c == ']') {
			if (depth == principal_depth)
				principal_depth = 0;
			if (--depth <= 0)
				return;
			p++;
		} else if (c == '"') {
			s = p + 1;
			if ((q = string_end(s, end)) == NULL)
				return;
			p = q + 1;
			if (p >= end || *p != ':')
				continue;	/* a value, not a key */
			p++;
			if (depth == 1 && q - s == 9 && memcmp(s, "principal", 9) == 0) {
				if (p < end && *p == '{') {
					principal_depth = depth + 1;
					depth++;
					p++;
				}
				continue;
			}
			for (i = 0; i < F_COUNT; i++) {
				if (f[i].v != NULL || (size_t)(q - s) != wanted[i].len || memcmp(s, wanted[i].name,
				    wanted[i].len) != 0)
					continue;
				if (wanted[i].in_principal ? principal_depth == 0 || depth != principal_depth : depth != 1)
					continue;
				if (p < end && *p == '"') {
					if ((q = string_end(p + 1, end)) == NULL)
						return;
					f[i].v = p + 1;
					f[i].e = q;
					p = q + 1;
				} else {
					for (f[i].v = p; p < end && *p >= '0' && *p <= '9'; p++)
						;
					f[i].e = p;
				}
				break;
			}
		} else {
			p++;
		}
	}
}

/* Hex digits [v, e) into out (cap bytes): the byte count, or -1 unless every digit pairs. */
static long
unhex(const char *v, const char *e, uint8_t *out, size_t cap)
{
	static signed char	val[256];
	static int		ready;
	size_t			n = (size_t)(e - v) / 2, i;
	int			bad = 0;

	if (!ready) {
		memset(val, -1, sizeof(val));
		for (i = 0; i < 10; i++)
			val['0' + i] = (signed char)i;
		for (i = 0; i < 6; i++) {
			val['a' + i] = (signed char)(10 + i);
			val['A' + i] = (signed char)(10 + i);
		}
		ready = 1;
	}
	if ((size_t)(e - v) % 2 != 0 || n > cap)
		return -1;
	for (i = 0; i < n; i++) {
		int hi = val[(unsigned char)v[2 * i]], lo = val[(unsigned char)v[2 * i + 1]];

		bad |= hi | lo;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return bad < 0 ? -1 : (long)n;
}

/*
 * A JSON string's text (between its quotes) as the bytes it stands for, into out (cap): the
 * escapes RFC 8259 defines, \u with its surrogate pairs as UTF-8. Its length, or -1 when the
 * text is not a JSON string's or does not fit.
 */
static long
json_unescape(const char *s, const char *e, char *out, size_t cap)
{
	size_t		k = 0;
	uint32_t	cp, lo;
	int		i, d;

	while (s < e) {
		if ((unsigned char)*s < 0x20 || *s == '"')
			return -1;
		if (*s != '\\') {
			if (k >= cap)
				return -1;
			out[k++] = *s++;
			continue;
		}
		if (++s >= e)
			return -1;
		switch (*s++) {
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			for (cp = 0, i = 0; i < 4; i++, s++) {
				if (s >= e || (d = wfpb__hexval(*s)) < 0)
					return -1;
				cp = cp << 4 | (uint32_t)d;
			}
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (e - s < 6 || s[0] != '\\' || s[1] != 'u')
					return -1;
				for (lo = 0, s += 2, i = 0; i < 4; i++, s++) {
					if ((d = wfpb__hexval(*s)) < 0)
						return -1;
					lo = lo << 4 | (uint32_t)d;
				}
				if (lo < 0xdc00 || lo >= 0xe000)
					return -1;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				return -1;
			}
			break;
		default:
			return -1;
		}
		if (k + 4 > cap)
			return -1;
		if (cp < 0x80) {
			out[k++] = (char)cp;
		} else if (cp < 0x800) {
			out[k++] = (char)(0xc0 | cp >> 6);
			out[k++] = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			out[k++] = (char)(0xe0 | cp >> 12);
			out[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[k++] = (char)(0x80 | (cp & 0x3f));
		} else {
			out[k++] = (char)(0xf0 | cp >> 18);
			out[k++] = (char)(0x80 | ((cp >> 12) & 0x3f));
			out[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[k++] = (char)(0x80 | (cp & 0x3f));
		}
	}
	return (long)k;
}

/*
 * A host-added string the line claims (host, user_name): its KEY_hex twin's bytes when the
 * line has one (the exporter writes it for bytes that are not UTF-8), else the string's.
 * Its length, 0 when absent, -1 when it cannot be what the exporter wrote.
 */
static long
claimed(const struct span *str, const struct span *hex, char *out, size_t cap)
{
	if (hex->v != NULL)
		return unhex(hex->v, hex->e, (uint8_t *)out, cap);
	if (str->v == NULL)
		return 0;
	return json_unescape(str->v, str->e, out, cap);
}

/*
 * The line is exactly what the exporter writes for record r with the host-added fields it
 * claims: made again and compared byte for byte (docs/AUDIT.md, "At the centre").
 */
static int
line_is_exact(struct run *rn, const char *line, size_t len, const struct span f[F_COUNT],
    const Wfpbroker__V1__AuditRecord *r, const uint8_t *framed, size_t flen, const uint8_t fp[32], const char *host,
    size_t host_len)
{
	struct wfpbctl_line_extra	x = { 0 };
	char				uname[1024];
	const char			*made;
	size_t				mlen;
	long				un = 0;

	if (r->principal != NULL && (un = claimed(&f[F_USER_NAME], &f[F_USER_NAME_HEX], uname, sizeof(uname))) < 0)
		return 0;
	x.host = host;
	x.host_len = host_len;
	x.key_fingerprint = fp;
	x.user_name = uname;
	x.user_name_len = (size_t)un;
	wfpb_json_mem_reset(&rn->line);
	wfpbctl_record_json(&rn->line, r, framed, flen, &x);
	if (wfpb_json_end(&rn->line) != 0)
		return 0;
	made = wfpb_json_mem(&rn->line, &mlen);
	/* The newline ends the line; what the line holds is the rest. */
	return mlen == len + 1 && memcmp(made, line, len) == 0;
}

static void
where_text(const struct run *rn, const struct where *w, char *out, size_t cap)
{
	char name[4 * 80 + 1];

	safe_text(rn->files[w->file], strnlen(rn->files[w->file], 80), name);
	snprintf(out, cap, "%s:%llu", name, (unsigned long long)w->line);
}

/* A problem of host h: counted; shown (text or JSON) while few of its kind have been. */
static void
problem(struct run *rn, struct host *h, enum problem kind, const char *fmt, ...)
{
	char	text[512];
	va_list	ap;

	if (h->count[kind]++ >= PROBLEMS_SHOWN)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (rn->json) {
		wfpb_json_obj_begin(&rn->j, NULL);
		wfpb_json_str(&rn->j, "key", h->file);
		wfpb_json_str(&rn->j, "kind", problem_name[kind]);
		wfpb_json_str(&rn->j, "detail", text);
		wfpb_json_obj_end(&rn->j);
	} else {
		printf("%s: %s: %s\n", h->file, problem_name[kind], text);
	}
}

/* The run of missing seqs being passed over ends before seq. */
static void
gap_end(struct run *rn, struct host *h, uint64_t seq)
{
	if (h->gap_from == 0)
		return;
	h->missing += seq - h->gap_from;
	problem(rn, h, P_GAP, "seq %llu..%llu missing", (unsigned long long)h->gap_from,
	    (unsigned long long)(seq - 1));
	h->gap_from = 0;
}

/* Record e (seq == h->next) joins the chain. */
static void
accept_record(struct run *rn, struct host *h, const struct slot *e)
{
	char at[512];

	gap_end(rn, h, e->seq);
	if (h->records == 0)
		h->first = e->seq;
	h->records++;
	if (h->linked && (!e->has_prev || memcmp(e->prev, h->last_hash, 32) != 0)) {
		where_text(rn, &e->at, at, sizeof(at));
		problem(rn, h, P_BREAK, "seq %llu (%s): prev_hash is not the hash of seq %llu",
		    (unsigned long long)e->seq, at, (unsigned long long)(e->seq - 1));
	}
	if (e->lost > 0) {
		h->lost += e->lost;
		where_text(rn, &e->at, at, sizeof(at));
		problem(rn, h, P_LOST, "seq %llu (%s): the broker could not write %llu records before it",
		    (unsigned long long)e->seq, at, (unsigned long long)e->lost);
	}
	if (e->checkpoint && !e->sig_ok) {
		where_text(rn, &e->at, at, sizeof(at));
		problem(rn, h, P_SIGNATURE, "checkpoint seq %llu (%s) does not verify with %s",
		    (unsigned long long)e->seq, at, h->file);
	} else if (e->checkpoint) {
		h->checkpoint_seq = e->seq;
		h->checkpoint_ms = e->time_ms;
		h->tail_first_ms = 0;
	} else if (h->tail_first_ms == 0 || e->time_ms < h->tail_first_ms) {
		h->tail_first_ms = e->time_ms ? e->time_ms : 1;
	}
	memcpy(h->last_hash, e->hash, 32);
	h->linked = 1;
	h->seen[e->seq % rn->repeats].seq = e->seq;
	memcpy(h->seen[e->seq % rn->repeats].hash, e->hash, sizeof(h->seen[0].hash));
	h->next = e->seq + 1;
}

/* Passes over seq h->next: accepted if it waits in the window, else missing. */
static void
advance(struct run *rn, struct host *h)
{
	struct slot *p = h->pend != NULL ? &h->pend[h->next % rn->window] : NULL;

	if (p != NULL && p->seq == h->next) {
		struct slot e = *p;

		p->seq = 0;
		h->npend--;
		accept_record(rn, h, &e);
		return;
	}
	if (h->gap_from == 0)
		h->gap_from = h->next;
	h->linked = 0;
	h->next++;
}

/* One copy of a record of host h, in whatever order it arrives. */
static int
take(struct run *rn, struct host *h, const struct slot *e)
{
	uint32_t	w = rn->window;
	struct slot	*p;
	struct seen	*o;
	char		at[512], at2[512];

	if (h->seen == NULL && (h->seen = calloc(rn->repeats, sizeof(*h->seen))) == NULL)
		return -1;
	if (h->next == 0)
		h->next = 1;
	if (e->seq < h->next) {
		/* A repeat of a record already in the chain: it must be the same record. */
		o = &h->seen[e->seq % rn->repeats];
		where_text(rn, &e->at, at, sizeof(at));
		if (o->seq != e->seq) {
			problem(rn, h, P_LATE, "seq %llu (%s) arrived more than %u records after its place: "
			    "it cannot be compared with the record there", (unsigned long long)e->seq, at, rn->repeats);
		} else if (memcmp(o->hash, e->hash, sizeof(o->hash)) != 0) {
			problem(rn, h, P_FORK, "seq %llu (%s): a different record from the one accepted for that seq",
			    (unsigned long long)e->seq, at);
		}
		return 0;
	}
	/* Past the window: what waits is taken in order, and what never came is missing. */
	if (e->seq - h->next >= w) {
		uint64_t target = e->seq - w + 1;

		while (h->next < target && h->npend > 0)
			advance(rn, h);
		if (h->next < target) {
			if (h->gap_from == 0)
				h->gap_from = h->next;
			h->linked = 0;
			h->next = target;
		}
	}
	if (e->seq == h->next) {
		accept_record(rn, h, e);
	} else {
		if (h->pend == NULL && (h->pend = calloc(w, sizeof(*h->pend))) == NULL)
			return -1;
		p = &h->pend[e->seq % w];
		if (p->seq == e->seq) {
			if (memcmp(p->hash, e->hash, 32) != 0) {
				where_text(rn, &p->at, at, sizeof(at));
				where_text(rn, &e->at, at2, sizeof(at2));
				problem(rn, h, P_FORK, "seq %llu: two different records (%s, %s)",
				    (unsigned long long)e->seq, at, at2);
			}
			return 0;
		}
		*p = *e;
		h->npend++;
	}
	while (h->pend != NULL && h->npend > 0 && h->pend[h->next % w].seq == h->next)
		advance(rn, h);
	return 0;
}

/* The host value a line gave: kept (escaped) for the report; a second distinct one is a problem. */
static void
note_host_name(struct run *rn, struct host *h, const char *name, size_t n)
{
	char		text[HOST_NAME_LEN];
	char		full[4 * 64 + 1];
	unsigned	i;

	safe_text(name, n < 31 ? n : 31, text);
	for (i = 0; i < h->nnames; i++)
		if (strcmp(h->names[i], text) == 0)
			return;
	if (h->nnames > 0 && !h->more_names) {
		safe_text(name, n < 64 ? n : 64, full);
		problem(rn, h, P_HOSTS, "lines of this key name more than one host (\"%s\", then \"%s\")", h->names[0],
		    full);
	}
	if (h->nnames < HOST_NAMES_MAX)
		snprintf(h->names[h->nnames++], HOST_NAME_LEN, "%s", text);
	else
		h->more_names = 1;
}

/* One line of a collected file (without its newline). */
static int
one_line(struct run *rn, unsigned file, uint64_t lineno, char *line, size_t len)
{
	const char			*end = line + len;
	Wfpbroker__V1__AuditRecord	*r;
	struct span			f[F_COUNT];
	uint8_t				fp[32];
	char				host[1024];
	size_t				flen;
	long				hn, rl;
	unsigned			k;
	struct host			*h;
	struct slot			e;
	int				rc = 0;

	if (len > 0 && line[len - 1] == '\r')
		end = line + --len;	/* a CRLF line end is a line end */
	scan_line(line, end, f);
	if (f[F_RECORD].v == NULL || f[F_AUDIT_KEY].v == NULL) {
		if (len > 0)
			rn->junk++;
		return 0;
	}
	/* An audit line whose record or key is not what one can be was damaged on the way. */
	if ((rl = unhex(f[F_RECORD].v, f[F_RECORD].e, rn->framed, WFPB_AUDIT_RECORD_MAX + 4)) < 4 ||
	    unhex(f[F_AUDIT_KEY].v, f[F_AUDIT_KEY].e, fp, 32) != 32 || (flen = (size_t)rl) < 4 ||
	    (((size_t)rn->framed[0] << 24) | ((size_t)rn->framed[1] << 16) | ((size_t)rn->framed[2] << 8) |
	    rn->framed[3]) != flen - 4 ||
	    (r = wfpbroker__v1__audit_record__unpack(NULL, flen - 4, rn->framed + 4)) == NULL) {
		rn->damaged++;
		return 0;
	}
	for (k = 0; k < rn->nhosts && memcmp(rn->hosts[k].fp, fp, 32) != 0; k++)
		;
	if (k == rn->nhosts) {
		rn->unknown++;
		wfpbroker__v1__audit_record__free_unpacked(r, NULL);
		return 0;
	}
	h = &rn->hosts[k];
	h->lines++;
	memset(&e, 0, sizeof(e));
	e.seq = r->seq;
	e.time_ms = r->time_unix_ms;
	e.lost = r->lost;
	e.at.file = file;
	e.at.line = lineno;
	wfpb__audit_chain_hash(rn->framed, flen, e.hash);
	if (r->prev_hash.len == 32) {
		memcpy(e.prev, r->prev_hash.data, 32);
		e.has_prev = 1;
	}
	if (r->kind == WFPBROKER__V1__AUDIT_KIND__AUDIT_CHECKPOINT) {
		uint8_t	*sb = NULL;
		size_t	sl = 0;

		e.checkpoint = 1;
		if (r->signature.len == crypto_sign_BYTES && wfpb__audit_signed_bytes(r, &sb, &sl) == 0)
			e.sig_ok = crypto_sign_verify_detached(r->signature.data, sb, sl, h->pub) == 0;
		free(sb);
	}
	if ((hn = claimed(&f[F_HOST], &f[F_HOST_HEX], host, sizeof(host))) < 0 ||
	    !line_is_exact(rn, line, len, f, r, rn->framed, flen, fp, host, (size_t)(hn > 0 ? hn : 0))) {
		char at[512];

		e.at.file = file;
		where_text(rn, &e.at, at, sizeof(at));
		problem(rn, h, P_ALTERED, "seq %llu (%s): the line is not what the exporter writes for its record",
		    (unsigned long long)e.seq, at);
	}
	if (hn > 0)
		note_host_name(rn, h, host, (size_t)hn);
	wfpbroker__v1__audit_record__free_unpacked(r, NULL);
	if (e.seq == 0) {
		rn->damaged++;
		return 0;
	}
	if (take(rn, h, &e) != 0)
		rc = -1;
	return rc;
}

/* Reads one collected file as a stream of lines ("-": standard input). */
static int
read_collected(struct run *rn, unsigned file)
{
	const char	*name = rn->files[file];
	FILE		*f = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
	char		*buf;
	size_t		have = 0, n, off;
	uint64_t	lineno = 0;
	int		skipping = 0, rc = 0;

	if (f == NULL) {
		fprintf(stderr, "wfpbctl: cannot read %s\n", name);
		return -1;
	}
	if ((buf = malloc(LINE_MAX_BYTES)) == NULL) {
		if (f != stdin)
			fclose(f);
		return -1;
	}
	for (;;) {
		n = fread(buf + have, 1, LINE_MAX_BYTES - have, f);
		have += n;
		off = 0;
		for (;;) {
			char *nl = memchr(buf + off, '\n', have - off);

			if (nl == NULL)
				break;
			lineno++;
			if (skipping)
				skipping = 0;	/* the end of a line too long to be ours */
			else if (one_line(rn, file, lineno, buf + off, (size_t)(nl - (buf + off))) != 0)
				rc = -1;
			off = (size_t)(nl - buf) + 1;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
		if (n == 0) {
			if (have > 0 && !skipping && one_line(rn, file, ++lineno, buf, have) != 0)
				rc = -1;
			break;
		}
		if (have == LINE_MAX_BYTES) {
			/* No audit line is this long: counted, and skipped to its end. */
			if (!skipping)
				rn->too_long++;
			skipping = 1;
			have = 0;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "wfpbctl: read error in %s\n", name);
		rc = -1;
	}
	if (f != stdin)
		fclose(f);
	free(buf);
	return rc;
}

static int
retired(char **list, unsigned n, const char *file)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i], file) == 0)
			return 1;
	return 0;
}

/* A host's chain is not whole: a gap, break, bad signature, fork, altered or late line, or a loss. */
static int
host_broken(const struct host *h)
{
	return h->count[P_GAP] || h->count[P_BREAK] || h->count[P_SIGNATURE] || h->count[P_FORK] ||
	    h->count[P_ALTERED] || h->count[P_LATE] || h->count[P_LOST];
}

/* The unsigned records at the end of its chain, and how old the oldest is (seconds). */
static uint64_t
host_tail(const struct host *h, uint64_t now_ms, uint64_t *age)
{
	uint64_t last = h->next ? h->next - 1 : 0, tail = h->records && last > h->checkpoint_seq ?
	    last - h->checkpoint_seq : 0;

	*age = tail && h->tail_first_ms && now_ms > h->tail_first_ms ? (now_ms - h->tail_first_ms) / 1000u : 0;
	return tail;
}

/* 1 when a host that sent lines fails the run: not whole, or a tail older than tail_max. */
static int
report_fails(const struct host *h, uint64_t now_ms, uint32_t tail_max)
{
	uint64_t age, tail = host_tail(h, now_ms, &age);

	return host_broken(h) || (tail && (!h->checkpoint_ms || age > tail_max));
}

/* The verdict on one host, reported; 1 when it fails the run. */
static int
report_host(struct run *rn, struct host *h, uint64_t now_ms, uint32_t silent_after, uint32_t tail_max)
{
	uint64_t	since = h->checkpoint_ms && now_ms > h->checkpoint_ms ? (now_ms - h->checkpoint_ms) / 1000u : 0;
	uint64_t	last = h->next ? h->next - 1 : 0, tail_age;
	uint64_t	tail = host_tail(h, now_ms, &tail_age);
	int		nothing = h->lines == 0;
	int		silent = nothing || (silent_after && (!h->checkpoint_ms || since > silent_after));
	int		broken = host_broken(h);
	int		stale = tail && (!h->checkpoint_ms || tail_age > tail_max);
	int		whole = !nothing && !broken && !tail;
	int		fails = nothing ? !h->retired : report_fails(h, now_ms, tail_max);
	const char	*verdict = nothing ? (h->retired ? "retired" : "SILENT") : broken ? "NOT WHOLE" :
	    tail ? (stale ? "STALE TAIL" : "unverified tail") : "whole";
	unsigned	i;

	if (nothing && rn->part)
		return 0;	/* another part's, or no one's: the parent says */

	if (rn->json) {
		wfpb_json_obj_begin(&rn->j, NULL);
		wfpb_json_str(&rn->j, "key", h->file);
		wfpb_json_hex(&rn->j, "audit_key", h->fp, 32);
		wfpb_json_arr_begin(&rn->j, "host_names");
		for (i = 0; i < h->nnames; i++)
			wfpb_json_str(&rn->j, NULL, h->names[i]);
		wfpb_json_arr_end(&rn->j);
		wfpb_json_str(&rn->j, "verdict", verdict);
		wfpb_json_u64(&rn->j, "lines", h->lines);
		wfpb_json_u64(&rn->j, "records", h->records);
		wfpb_json_u64(&rn->j, "first_seq", h->first);
		wfpb_json_u64(&rn->j, "last_seq", last);
		wfpb_json_u64(&rn->j, "missing", h->missing);
		wfpb_json_u64(&rn->j, "lost_records", h->lost);
		for (i = 0; i < P_KINDS; i++)
			wfpb_json_u64(&rn->j, problem_name[i], h->count[i]);
		wfpb_json_u64(&rn->j, "last_checkpoint_seq", h->checkpoint_seq);
		if (h->checkpoint_ms)
			wfpb_json_u64(&rn->j, "seconds_since_checkpoint", since);
		wfpb_json_u64(&rn->j, "unverified_tail", tail);
		if (tail)
			wfpb_json_u64(&rn->j, "tail_age_seconds", tail_age);
		wfpb_json_bool(&rn->j, "silent", silent);
		wfpb_json_bool(&rn->j, "retired", h->retired);
		wfpb_json_bool(&rn->j, "whole", whole);
		wfpb_json_bool(&rn->j, "fails", fails);
		wfpb_json_obj_end(&rn->j);
		return fails;
	}
	printf("%s (host", h->file);
	for (i = 0; i < h->nnames; i++)
		printf("%s\"%s\"", i ? ", " : " ", h->names[i]);
	printf("%s%s):\n", h->more_names ? ", ..." : "", h->nnames ? "" : " unnamed");
	if (nothing) {
		printf("  %s: no lines of this key were collected\n", verdict);
		return fails;
	}
	printf("  %s: %lu records (%lu lines), seq %llu..%llu; %lu gaps (%lu missing), %lu breaks, "
	    "%lu bad signatures, %lu forks, %lu altered, %lu late, %llu lost; last checkpoint ",
	    verdict, h->records, h->lines, (unsigned long long)h->first, (unsigned long long)last,
	    h->count[P_GAP], h->missing, h->count[P_BREAK], h->count[P_SIGNATURE], h->count[P_FORK],
	    h->count[P_ALTERED], h->count[P_LATE], (unsigned long long)h->lost);
	if (h->checkpoint_ms)
		printf("seq %llu, %llu s ago", (unsigned long long)h->checkpoint_seq, (unsigned long long)since);
	else
		printf("never");
	printf("%s\n", silent ? " (SILENT)" : "");
	if (tail)
		printf("  unverified tail: seq %llu..%llu (%llu records) follow the last valid checkpoint, "
		    "the oldest %llu s old%s\n", (unsigned long long)(h->checkpoint_seq + 1), (unsigned long long)last,
		    (unsigned long long)tail, (unsigned long long)tail_age,
		    stale ? " (older than --tail-max: a checkpoint should have covered it)" : "");
	return fails;
}

/* Reads the run's files and reports every host (not the totals). 0, or -1 when a file could not be read. */
static int
verify_files(struct run *rn, uint64_t now_ms, uint32_t silent_after, uint32_t tail_max, unsigned *failing)
{
	unsigned k;

	for (k = 0; k < rn->nfiles; k++)
		if (read_collected(rn, k) != 0)
			return -1;
	/* The end of the stream: what still waits in a window is taken in order, the rest is missing. */
	for (k = 0; k < rn->nhosts; k++) {
		struct host *h = &rn->hosts[k];

		while (h->npend > 0)
			advance(rn, h);
		gap_end(rn, h, h->next);
	}
	if (rn->json) {
		wfpb_json_arr_end(&rn->j);
		wfpb_json_arr_begin(&rn->j, "hosts");
	}
	*failing = 0;
	for (k = 0; k < rn->nhosts; k++)
		*failing += (unsigned)report_host(rn, &rn->hosts[k], now_ms, silent_after, tail_max);
	return 0;
}

#ifndef _WIN32
/* Copies what a part wrote to stdout. */
static void
copy_out(FILE *f)
{
	char	buf[65536];
	size_t	n;

	rewind(f);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
}

/*
 * --jobs: part j verifies files j, j + jobs, ... in a process of its own, writes its report to
 * a temporary file and, to another, one line per key it saw ("KEY LINES FAILS") and its totals
 * ("T UNKNOWN JUNK DAMAGED OVERLONG"). The parent prints the parts' reports in order, then
 * what only it can see: a key in more than one part, a key in none. Returns the exit status.
 */
static int
verify_parts(struct run *rn, unsigned jobs, uint64_t now_ms, uint32_t silent_after, uint32_t tail_max)
{
	FILE		*text[JOBS_MAX], *sum[JOBS_MAX];
	pid_t		pid[JOBS_MAX];
	unsigned	*parts, *fails, j, k, n, failing = 0, started = 0;
	unsigned long	*lines, t[4] = { 0 }, u[4];
	int		status, rc = 0;

	if ((parts = calloc(rn->nhosts, sizeof(*parts))) == NULL || (fails = calloc(rn->nhosts, sizeof(*fails))) == NULL ||
	    (lines = calloc(rn->nhosts, sizeof(*lines))) == NULL)
		return 1;	/* exits at once: what was allocated goes with the process */
	fflush(stdout);
	for (j = 0; j < jobs; j++, started++) {
		if ((text[j] = tmpfile()) == NULL || (sum[j] = tmpfile()) == NULL || (pid[j] = fork()) < 0) {
			fprintf(stderr, "wfpbctl: verify-collected --jobs: cannot start part %u\n", j);
			rc = 1;
			break;
		}
		if (pid[j] == 0) {
			unsigned f;

			for (n = 0, f = j; f < rn->nfiles; f += jobs)
				rn->files[n++] = rn->files[f];
			rn->nfiles = n;
			rn->part = 1;
			if (dup2(fileno(text[j]), 1) < 0 || verify_files(rn, now_ms, silent_after, tail_max, &failing) != 0)
				_exit(3);
			for (k = 0; k < rn->nhosts; k++)
				if (rn->hosts[k].lines > 0)
					fprintf(sum[j], "%u %lu %d\n", k, rn->hosts[k].lines,
					    report_fails(&rn->hosts[k], now_ms, tail_max));
			fprintf(sum[j], "T %lu %lu %lu %lu\n", rn->unknown, rn->junk, rn->damaged, rn->too_long);
			fflush(stdout);
			_exit(fflush(sum[j]) == 0 ? 0 : 3);
		}
	}
	for (j = 0; j < started; j++) {
		if (waitpid(pid[j], &status, 0) != pid[j] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			rc = 1;
			continue;
		}
		copy_out(text[j]);
		rewind(sum[j]);
		for (;;) {
			unsigned long	l;
			int		fl;

			if (fscanf(sum[j], "%u %lu %d", &k, &l, &fl) == 3 && k < rn->nhosts) {
				parts[k]++;
				lines[k] += l;
				fails[k] |= (unsigned)fl;
			} else if (fscanf(sum[j], " T %lu %lu %lu %lu", &u[0], &u[1], &u[2], &u[3]) == 4) {
				for (n = 0; n < 4; n++)
					t[n] += u[n];
			} else {
				break;
			}
		}
	}
	for (k = 0; k < rn->nhosts; k++) {
		struct host *h = &rn->hosts[k];

		if (parts[k] > 1) {
			printf("%s: split: its lines are in %u parts; each part must hold the files of its own keys "
			    "(the chain cannot be followed across parts)\n", h->file, parts[k]);
			failing++;
		} else if (parts[k] == 0) {
			failing += (unsigned)report_host(rn, h, now_ms, silent_after, tail_max);
		} else {
			failing += fails[k];
		}
	}
	if (t[0])
		printf("%lu lines name an audit key not in the keys directory\n", t[0]);
	if (t[1])
		printf("%lu lines are not exported audit records (ignored)\n", t[1]);
	if (t[2])
		printf("%lu lines carry a record or key that does not decode (damaged)\n", t[2]);
	if (t[3])
		printf("%lu lines are longer than any audit line (ignored)\n", t[3]);
	free(parts);
	free(fails);
	free(lines);
	return rc || failing || t[0] || t[2] ? 1 : 0;
}
#else
static int
verify_parts(struct run *rn, unsigned jobs, uint64_t now_ms, uint32_t silent_after, uint32_t tail_max)
{
	unsigned failing = 0;

	/* No fork here: the parts run one after another, which is the same verdict. */
	(void)jobs;
	if (verify_files(rn, now_ms, silent_after, tail_max, &failing) != 0)
		return 1;
	return failing || rn->unknown || rn->damaged ? 1 : 0;
}
#endif

static void
usage_error(const char *what)
{
	fprintf(stderr, "wfpbctl: audit verify-collected: %s\n", what);
}

int
wfpbctl_verify_collected(int argc, char **argv)
{
	static struct run	rn;
	char			*retired_list[RETIRED_MAX];
	const char		*dir = NULL;
	uint32_t		silent_after = 0, tail_max = TAIL_MAX_DEFAULT, jobs = 1;
	uint64_t		now_ms = (uint64_t)time(NULL) * 1000u;
	unsigned		nretired = 0, k, failing = 0;
	int			i, rc = 0;

	memset(&rn, 0, sizeof(rn));
	rn.window = WINDOW_DEFAULT;
	if ((rn.files = calloc((size_t)argc + 1, sizeof(*rn.files))) == NULL)
		return 1;
	for (i = 0; i < argc; i++) {
		uint32_t	*num = NULL, min = 1, max = UINT32_MAX;

		if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			rn.json = 1;
		else if (strcmp(argv[i], "--silent-after") == 0)
			num = &silent_after;
		else if (strcmp(argv[i], "--tail-max") == 0)
			num = &tail_max, min = 0;
		else if (strcmp(argv[i], "--window") == 0)
			num = &rn.window, min = 16, max = WINDOW_MAX;
		else if (strcmp(argv[i], "--jobs") == 0)
			num = &jobs, max = JOBS_MAX;
		else if (strcmp(argv[i], "--retired") == 0 && i + 1 < argc && nretired < RETIRED_MAX)
			retired_list[nretired++] = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			goto usage;
		else
			rn.files[rn.nfiles++] = argv[i];
		if (num != NULL && (i + 1 >= argc || wfpb_parse_u32(argv[++i], min, max, num) != 0)) {
			usage_error("a number option needs a number in its range");
			goto usage;
		}
	}
	if (dir == NULL || rn.nfiles == 0)
		goto usage;
	rn.repeats = REPEATS_PER_WINDOW * rn.window;
	if (jobs > 1 && rn.json) {
		usage_error("--jobs writes a text report; verify the parts with --json one by one");
		goto usage;
	}
	if ((rn.hosts = calloc(KEYS_MAX, sizeof(*rn.hosts))) == NULL || (rn.framed = malloc(WFPB_AUDIT_RECORD_MAX +
	    4)) == NULL) {
		rc = 1;
		goto out;
	}
	if (load_keys(&rn, dir) != 0 || rn.nhosts == 0) {
		fprintf(stderr, "wfpbctl: no audit keys (*.pub) in %s\n", dir);
		rc = 1;
		goto out;
	}
	for (k = 0; k < rn.nhosts; k++)
		rn.hosts[k].retired = retired(retired_list, nretired, rn.hosts[k].file);
	wfpb_json_init_mem(&rn.line);
	if (rn.json) {
		wfpb_json_init(&rn.j, stdout);
		wfpb_json_obj_begin(&rn.j, NULL);
		wfpb_json_arr_begin(&rn.j, "problems");
	}
	if (jobs > 1) {
		rc = verify_parts(&rn, jobs, now_ms, silent_after, tail_max);
		goto out;
	}
	if (verify_files(&rn, now_ms, silent_after, tail_max, &failing) != 0) {
		rc = 1;
		goto out;
	}
	if (rn.json) {
		wfpb_json_arr_end(&rn.j);
		wfpb_json_u64(&rn.j, "unknown_key_lines", rn.unknown);
		wfpb_json_u64(&rn.j, "unreadable_lines", rn.junk);
		wfpb_json_u64(&rn.j, "damaged_lines", rn.damaged);
		wfpb_json_u64(&rn.j, "overlong_lines", rn.too_long);
		wfpb_json_u64(&rn.j, "failing_hosts", failing);
		wfpb_json_obj_end(&rn.j);
		(void)wfpb_json_end(&rn.j);
	} else {
		if (rn.unknown)
			printf("%lu lines name an audit key not in the keys directory\n", rn.unknown);
		if (rn.junk)
			printf("%lu lines are not exported audit records (ignored)\n", rn.junk);
		if (rn.damaged)
			printf("%lu lines carry a record or key that does not decode (damaged)\n", rn.damaged);
		if (rn.too_long)
			printf("%lu lines are longer than any audit line (ignored)\n", rn.too_long);
	}
	rc = failing || rn.unknown || rn.damaged ? 1 : 0;
out:
	for (k = 0; rn.hosts != NULL && k < rn.nhosts; k++) {
		free(rn.hosts[k].pend);
		free(rn.hosts[k].seen);
	}
	free(rn.hosts);
	free(rn.framed);
	free(rn.files);
	wfpb_json_mem_free(&rn.line);
	return rc;
usage:
	free(rn.files);
	return 2;
}
