/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpbctl audit: verify, tail and export the broker's audit log. The file is
 * read whole and treated as untrusted; verification is the same code the
 * broker runs at start (service/core/audit.c).
 *
 *   wfpbctl audit verify FILE... --pubkey AUDIT_PUB [--live] [--expect SEQ:HASH]   (rotated files oldest first)
 *   wfpbctl audit tail [-f] [-n N] FILE
 *   wfpbctl audit export --json FILE [--pubkey KEY]
 *   wfpbctl audit export --json --follow [--cursor CUR] [--relp HOST:PORT [TLS options]] FILE
 */
#ifdef _WIN32
#include <winsock2.h>
#include <windows.h>
#include <sddl.h>
#else
#include <pwd.h>
#include <signal.h>
#include <unistd.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "audit_cmd.h"
#include "json.h"
#include "keyfile.h"
#include "num.h"
#ifdef WFPB_HAVE_RELP
#include "relp.h"
#endif
#include "wfpb.h"
#include "wfpbroker.pb-c.h"

static int
read_log(const char *path, uint8_t **buf, size_t *len)
{
	int os_err = 0, rc = wfpb__file_read_all(path, WFPB_AUDIT_FILE_MAX, buf, len, &os_err);

	if (rc != 0)
		fprintf(stderr, "wfpbctl: cannot read %s (%s)\n", path, rc == WFPB_E_NOENT ? "no such file" :
		    wfpb_strerror(rc));
	return rc;
}

/* Verifies one file; returns 0 and fills rep, or prints the failure and returns 1. */
static int
verify_one(const char *file, const uint8_t *pk, int last, int live, struct wfpb_audit_report *rep)
{
	uint8_t	*buf;
	size_t	len;
	int	rc;

	if (read_log(file, &buf, &len) != 0)
		return 1;
	rc = wfpb_audit_verify(buf, len, pk, rep);
	free(buf);
	if (rc != 0) {
		printf("%s: FAIL at seq %llu: %s\n", file, (unsigned long long)rep->bad_seq, rep->error);
		return 1;
	}
	if (rep->torn) {
		printf("%s: FAIL at seq %llu: the file ends inside this record (cut short)\n", file,
		    (unsigned long long)rep->bad_seq);
		return 1;
	}
	if (rep->records == 0) {
		printf("%s: FAIL: no records\n", file);
		return 1;
	}
	if (rep->lost > 0) {
		/* The chain is whole, the log is not: it never verifies as if nothing was missing. */
		printf("%s: FAIL at seq %llu: %llu records were lost before it (the broker could not write them: "
		    "its queue was full while the log could not be written)\n", file,
		    (unsigned long long)rep->first_lost_seq, (unsigned long long)rep->lost);
		return 1;
	}
	if (rep->last_checkpoint_seq != rep->last_seq && !(last && live)) {
		printf("%s: FAIL at seq %llu: records %llu..%llu are not covered by a signed checkpoint "
		    "(a checkpoint was removed, or the log is still being written: --live)\n", file,
		    (unsigned long long)(rep->last_checkpoint_seq + 1),
		    (unsigned long long)(rep->last_checkpoint_seq + 1),
		    (unsigned long long)rep->last_seq);
		return 1;
	}
	printf("%s: ok, seq %llu..%llu, %llu records, %llu signed checkpoints%s\n", file,
	    (unsigned long long)rep->first_seq, (unsigned long long)rep->last_seq, (unsigned long long)rep->records,
	    (unsigned long long)rep->checkpoints,
	    rep->last_checkpoint_seq != rep->last_seq ? " (tail after the last checkpoint not yet signed)" : "");
	return 0;
}

/* "SEQ:HEX64" as the broker reports its anchor; 0, or -1 when it is not that. */
static int
parse_anchor(const char *s, uint64_t *seq, uint8_t hash[WFPB_AUDIT_HASH_LEN])
{
	const char	*colon = strchr(s, ':');
	char		*end;
	size_t		got = 0;

	if (colon == NULL || colon == s || *s < '0' || *s > '9')
		return -1;
	*seq = strtoull(s, &end, 10);
	if (end != colon || *seq == 0 || strlen(colon + 1) != 2 * WFPB_AUDIT_HASH_LEN ||
	    sodium_hex2bin(hash, WFPB_AUDIT_HASH_LEN, colon + 1, 2 * WFPB_AUDIT_HASH_LEN, NULL, &got, NULL) != 0 ||
	    got != WFPB_AUDIT_HASH_LEN)
		return -1;
	return 0;
}

/* The anchor check: the record at seq is in one of the files and hashes as reported. */
static int
check_anchor(const char **files, int n, uint64_t last_seq, uint64_t seq, const uint8_t want[WFPB_AUDIT_HASH_LEN])
{
	uint8_t	*buf, got[WFPB_AUDIT_HASH_LEN];
	size_t	len;
	int	i, found = 0;

	if (last_seq < seq) {
		printf("FAIL: the log ends at seq %llu, before the anchor at seq %llu: records were cut off the end\n",
		    (unsigned long long)last_seq, (unsigned long long)seq);
		return 1;
	}
	for (i = 0; i < n && !found; i++) {
		if (read_log(files[i], &buf, &len) != 0)
			return 1;
		found = wfpb_audit_hash_at(buf, len, seq, got) == 0;
		free(buf);
	}
	if (!found) {
		printf("FAIL: no file given holds seq %llu, the anchor\n", (unsigned long long)seq);
		return 1;
	}
	if (sodium_memcmp(got, want, WFPB_AUDIT_HASH_LEN) != 0) {
		printf("FAIL at seq %llu: the record there is not the one the anchor names\n", (unsigned long long)seq);
		return 1;
	}
	printf("anchor %llu: ok\n", (unsigned long long)seq);
	return 0;
}

/*
 * verify FILE... --pubkey KEY [--live] [--expect SEQ:HASH]: files oldest
 * first; each link between them is checked, and with --expect the log must
 * reach the anchor the broker reported outside it.
 */
static int
verify(int argc, char **argv)
{
	struct wfpb_audit_report	rep, prev;
	uint8_t				pk[32], anchor[WFPB_AUDIT_HASH_LEN];
	const char			*files[64], *key = NULL;
	uint64_t			anchor_seq = 0;
	int				i, n = 0, live = 0, rc;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--pubkey") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--live") == 0)
			live = 1;
		else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc) {
			if (parse_anchor(argv[++i], &anchor_seq, anchor) != 0) {
				fprintf(stderr, "wfpbctl: --expect %s: want SEQ:HASH as the broker reports it\n",
				    argv[i]);
				return 2;
			}
		} else if (n < 64)
			files[n++] = argv[i];
		else
			return 2;
	}
	if (n == 0 || key == NULL)
		return 2;
	if ((rc = wfpb_keyfile_load_public(key, pk)) != 0) {
		fprintf(stderr, "wfpbctl: audit public key %s: %s\n", key, wfpb_strerror(rc));
		return 1;
	}
	for (i = 0; i < n; i++) {
		if (verify_one(files[i], pk, i == n - 1, live, &rep) != 0)
			return 1;
		if (i > 0 && (rep.first_seq != prev.last_seq + 1 ||
		    sodium_memcmp(rep.first_prev_hash, prev.last_hash, WFPB_AUDIT_HASH_LEN) != 0)) {
			printf("%s: FAIL at seq %llu: does not continue %s (seq or hash link broken)\n", files[i],
			    (unsigned long long)rep.first_seq, files[i - 1]);
			return 1;
		}
		if (i == 0 && n > 1 && rep.first_seq != 1)
			printf("%s: continues an earlier file not given here\n", files[0]);
		prev = rep;
	}
	if (anchor_seq != 0)
		return check_anchor(files, n, rep.last_seq, anchor_seq, anchor);
	return 0;
}

const char *
wfpbctl_enum_name(const ProtobufCEnumDescriptor *d, int v)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);

	return ev ? ev->name : "UNKNOWN";
}

void
wfpbctl_addr_text(const Wfpbroker__V1__Address *a, char out[WFPB_ADDR_STRLEN])
{
	struct wfpb_addr w = { 0 };

	w.family = a->family == WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6 ? WFPB_AF_INET6 : WFPB_AF_INET;
	if (a->addr.len == wfpb_addr_len(w.family))
		memcpy(w.addr, a->addr.data, a->addr.len);
	w.port = (uint16_t)a->port;
	wfpb_addr_format(&w, out);
}

/* What every exported line carries besides its record: where it comes from (docs/AUDIT.md, "Fleet"). */
static struct {
	char	host[256];
	int	has_key;
	uint8_t	key_fingerprint[32];	/* BLAKE2b-256 of the broker's Ed25519 audit public key */
} line_ctx;

/* The account name of a record's user (uid or SID), looked up here at export; "" when unknown. */
static void
user_name_lookup(const char *user, char *out, size_t cap)
{
	out[0] = '\0';
	if (user == NULL || user[0] == '\0')
		return;
#ifdef _WIN32
	{
		PSID		sid = NULL;
		char		name[256], domain[256];
		DWORD		n = sizeof(name), d = sizeof(domain);
		SID_NAME_USE	use;

		if (ConvertStringSidToSidA(user, &sid) && LookupAccountSidA(NULL, sid, name, &n, domain, &d, &use))
			snprintf(out, cap, "%s\\%s", domain, name);
		LocalFree(sid);
	}
#else
	{
		uint32_t	uid;
		struct passwd	pw, *res = NULL;
		char		buf[1024];

		if (wfpb_parse_u32(user, 0, UINT32_MAX, &uid) == 0 && getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf),
		    &res) == 0 &&
		    res != NULL)
			snprintf(out, cap, "%s", pw.pw_name);
	}
#endif
}

#define USER_CACHE	16
#define USER_CACHE_MS	60000	/* a renamed account shows under its new name within a minute */

/*
 * user_name_lookup through a small cache: a follower exports thousands of records a second
 * from a handful of users, and each lookup reads the account database.
 */
static void
user_name(const char *user, char *out, size_t cap)
{
	static struct {
		char		user[192], name[256];
		uint64_t	at_ms;
	}		cache[USER_CACHE];
	static unsigned	next;
	uint64_t	now = wfpb_monotonic_us() / 1000;
	unsigned	i;

	if (user == NULL || strlen(user) >= sizeof(cache[0].user)) {
		user_name_lookup(user, out, cap);
		return;
	}
	for (i = 0; i < USER_CACHE; i++)
		if (cache[i].at_ms != 0 && now - cache[i].at_ms < USER_CACHE_MS && strcmp(cache[i].user, user) == 0) {
			snprintf(out, cap, "%s", cache[i].name);
			return;
		}
	user_name_lookup(user, out, cap);
	i = next++ % USER_CACHE;
	snprintf(cache[i].user, sizeof(cache[i].user), "%s", user);
	snprintf(cache[i].name, sizeof(cache[i].name), "%s", out);
	cache[i].at_ms = now != 0 ? now : 1;
}

/*
 * One record as one JSON object a line, through the project's one JSON writer
 * (docs/AUDIT.md): its fields by name for a SIEM, and its exact bytes
 * ("record", hex) so a collector can recompute the chain and tell an altered
 * field from the original. What the exporting host adds (host, audit key,
 * the user's account name) comes in x. The centre's verifier makes the same
 * line again from the record and compares bytes (audit_collect.c).
 */
void
wfpbctl_record_json(struct wfpb_json *j, const Wfpbroker__V1__AuditRecord *r, const uint8_t *framed,
    size_t framed_len, const struct wfpbctl_line_extra *x)
{
	char	a[WFPB_ADDR_STRLEN], when[WFPB_RFC3339_LEN];
	size_t	i;

	wfpb_json_obj_begin(j, NULL);
	if (x->host != NULL && x->host_len > 0)
		wfpb_json_strn(j, "host", x->host, x->host_len);
	if (x->key_fingerprint != NULL)
		wfpb_json_hex(j, "audit_key", x->key_fingerprint, 32);
	wfpb_json_u64(j, "seq", r->seq);
	wfpb_rfc3339(r->time_unix_ms, when);
	wfpb_json_str(j, "time", when);
	wfpb_json_u64(j, "time_unix_ms", r->time_unix_ms);
	wfpb_json_str(j, "kind", wfpbctl_enum_name(&wfpbroker__v1__audit_kind__descriptor, r->kind));
	wfpb_json_u64(j, "session_id", r->session_id);
	wfpb_json_u64(j, "request_id", r->request_id);
	wfpb_json_str(j, "op", r->op);
	if (r->principal != NULL) {
		wfpb_json_obj_begin(j, "principal");
		wfpb_json_str(j, "user", r->principal->user);
		if (x->user_name != NULL && x->user_name_len > 0)
			wfpb_json_strn(j, "user_name", x->user_name, x->user_name_len);
		wfpb_json_u64(j, "pid", r->principal->pid);
		wfpb_json_str(j, "image", r->principal->image);
		wfpb_json_str(j, "name", r->principal->name);
		if (r->principal->key_fingerprint.len)
			wfpb_json_hex(j, "key_fingerprint", r->principal->key_fingerprint.data,
			    r->principal->key_fingerprint.len);
		wfpb_json_obj_end(j);
	}
	wfpb_json_arr_begin(j, "addresses");
	for (i = 0; i < r->n_addresses; i++) {
		wfpbctl_addr_text(r->addresses[i], a);
		wfpb_json_str(j, NULL, a);
	}
	wfpb_json_arr_end(j);
	if (r->flow_id != 0) {
		char flow[17];

		/* Hex, not a number: 64 bits do not survive a JSON reader that holds numbers as doubles. */
		snprintf(flow, sizeof(flow), "%016llx", (unsigned long long)r->flow_id);
		wfpb_json_str(j, "flow_id", flow);
	}
	if (r->original_destination != NULL) {
		wfpbctl_addr_text(r->original_destination, a);
		wfpb_json_str(j, "original_destination", a);
	}
	wfpb_json_arr_begin(j, "blob_hashes");
	for (i = 0; i < r->n_blob_hashes; i++)
		wfpb_json_hex(j, NULL, r->blob_hashes[i].data, r->blob_hashes[i].len);
	wfpb_json_arr_end(j);
	wfpb_json_str(j, "status", wfpbctl_enum_name(&wfpbroker__v1__status_code__descriptor, r->status));
	wfpb_json_u64(j, "latency_us", r->latency_us);
	wfpb_json_str(j, "message", r->message);
	if (r->lost)
		wfpb_json_u64(j, "lost", r->lost);
	wfpb_json_hex(j, "prev_hash", r->prev_hash.data, r->prev_hash.len);
	if (r->signature.len)
		wfpb_json_hex(j, "signature", r->signature.data, r->signature.len);
	wfpb_json_hex(j, "record", framed, framed_len);
	wfpb_json_obj_end(j);
}

static int
json_line(FILE *out, const Wfpbroker__V1__AuditRecord *r, const uint8_t *framed, size_t framed_len)
{
	struct wfpb_json		j;
	struct wfpbctl_line_extra	x = { 0 };
	char				uname[256];

	x.host = line_ctx.host;
	x.host_len = strlen(line_ctx.host);
	x.key_fingerprint = line_ctx.has_key ? line_ctx.key_fingerprint : NULL;
	if (r->principal != NULL) {
		user_name(r->principal->user, uname, sizeof(uname));
		x.user_name = uname;
		x.user_name_len = strlen(uname);
	}
	wfpb_json_init(&j, out);
	wfpbctl_record_json(&j, r, framed, framed_len, &x);
	return wfpb_json_end(&j);
}

static int
print_json(const Wfpbroker__V1__AuditRecord *r, const uint8_t *framed, size_t framed_len)
{
	(void)json_line(stdout, r, framed, framed_len);	/* a write error shows at the flush */
	return 0;
}

static int
print_line(const Wfpbroker__V1__AuditRecord *r, const uint8_t *framed, size_t framed_len)
{
	(void)framed;
	(void)framed_len;
	char	a[WFPB_ADDR_STRLEN] = "";
	size_t	i;

	printf("%llu %llu %s", (unsigned long long)r->seq, (unsigned long long)r->time_unix_ms,
	    wfpbctl_enum_name(&wfpbroker__v1__audit_kind__descriptor, r->kind));
	if (r->principal != NULL)
		printf(" user=%s pid=%u principal=%s", r->principal->user, r->principal->pid,
		    r->principal->name[0] ? r->principal->name : "-");
	if (r->op != NULL && r->op[0] != '\0')
		printf(" op=%s", r->op);
	for (i = 0; i < r->n_addresses; i++) {
		wfpbctl_addr_text(r->addresses[i], a);
		printf(" %s", a);
	}
	if (r->kind == WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST)
		printf(" status=%s", wfpbctl_enum_name(&wfpbroker__v1__status_code__descriptor, r->status));
	if (r->message != NULL && r->message[0] != '\0')
		printf(" \"%s\"", r->message);
	printf("\n");
	return 0;
}

/*
 * Calls fn for each complete record from offset *off on whose seq is at
 * least from_seq, until fn returns non-zero (that record is left where it is,
 * for the next walk); returns the number taken. An offset past the end (the
 * file was replaced by a shorter one) starts over from the beginning.
 */
typedef int (*record_fn)(const Wfpbroker__V1__AuditRecord *, const uint8_t *framed, size_t framed_len);

static size_t
walk(const uint8_t *buf, size_t len, size_t *off, uint64_t from_seq, record_fn fn)
{
	Wfpbroker__V1__AuditRecord	*r;
	size_t				rlen, n = 0;

	if (*off > len)
		*off = 0;
	while (len - *off >= 4) {
		rlen = ((size_t)buf[*off] << 24) | ((size_t)buf[*off + 1] << 16) | ((size_t)buf[*off + 2] << 8) |
		    buf[*off + 3];
		if (rlen == 0 || rlen > WFPB_AUDIT_RECORD_MAX || len - *off - 4 < rlen)
			break;
		if ((r = wfpbroker__v1__audit_record__unpack(NULL, rlen, buf + *off + 4)) == NULL)
			break;
		if (r->seq >= from_seq) {
			if (fn(r, buf + *off, rlen + 4) != 0) {
				wfpbroker__v1__audit_record__free_unpacked(r, NULL);
				break;
			}
			n++;
		}
		wfpbroker__v1__audit_record__free_unpacked(r, NULL);
		*off += rlen + 4;
	}
	return n;
}

/* The seq of the record at off (0 when there is none), and its message if note is not NULL. */
static uint64_t
record_at(const uint8_t *buf, size_t len, size_t off, char *note, size_t cap)
{
	Wfpbroker__V1__AuditRecord	*r;
	size_t				rlen;
	uint64_t			seq;

	if (note != NULL)
		note[0] = '\0';
	if (off > len || len - off < 4)
		return 0;
	rlen = ((size_t)buf[off] << 24) | ((size_t)buf[off + 1] << 16) | ((size_t)buf[off + 2] << 8) | buf[off + 3];
	if (rlen == 0 || rlen > WFPB_AUDIT_RECORD_MAX || len - off - 4 < rlen ||
	    (r = wfpbroker__v1__audit_record__unpack(NULL, rlen, buf + off + 4)) == NULL)
		return 0;
	seq = r->seq;
	if (note != NULL && r->message != NULL)
		snprintf(note, cap, "%s", r->message);
	wfpbroker__v1__audit_record__free_unpacked(r, NULL);
	return seq;
}

static uint64_t follow_next;	/* the seq tail -f prints next */
static uint64_t follow_first;	/* the first seq of the file follow_poll's offset is in (0: none yet) */

/*
 * What following does with a record: print a line (tail -f) or a JSON object (export
 * --follow), or queue it for RELP (non-zero when the queue is full: taken at a later poll).
 */
static record_fn follow_print = print_line;

static int
print_followed(const Wfpbroker__V1__AuditRecord *r, const uint8_t *framed, size_t framed_len)
{
	if (follow_print(r, framed, framed_len) != 0)
		return 1;
	follow_next = r->seq + 1;
	return 0;
}

#define FOLLOW_FILES_MAX	64	/* rotated files read back in one poll */
#define FOLLOW_PATH_MAX		1024

/*
 * The rotated files that hold records from follow_next up to where path
 * begins, oldest first: each file opens with a checkpoint "continues NAME"
 * naming the one before it (audit.c rotate). Returns how many were found.
 */
static int
rotated_behind(const char *path, const uint8_t *buf, size_t len, char names[][FOLLOW_PATH_MAX], int max)
{
	char		note[FOLLOW_PATH_MAX + 16], dir[FOLLOW_PATH_MAX];
	const char	*slash;
	uint8_t		*b = NULL;
	size_t		blen;
	int		n = 0, i, os_err;
	uint64_t	first = record_at(buf, len, 0, note, sizeof(note));

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		slash = strrchr(dir, '\\');
	dir[slash != NULL ? (size_t)(slash - dir) + 1 : 0] = '\0';
	while (first > follow_next && n < max && strncmp(note, "continues ", 10) == 0 &&
	    strchr(note + 10, '/') == NULL && strchr(note + 10, '\\') == NULL) {
		if ((size_t)snprintf(names[n], FOLLOW_PATH_MAX, "%s%s", dir, note + 10) >= FOLLOW_PATH_MAX)
			break;
		free(b);
		b = NULL;
		if (wfpb__file_read_all(names[n], WFPB_AUDIT_FILE_MAX, &b, &blen, &os_err) != 0)
			break;
		n++;
		first = record_at(b, blen, 0, note, sizeof(note));
	}
	free(b);
	/* Oldest first. */
	for (i = 0; i < n / 2; i++) {
		char t[FOLLOW_PATH_MAX];

		memcpy(t, names[i], sizeof(t));
		memcpy(names[i], names[n - 1 - i], sizeof(t));
		memcpy(names[n - 1 - i], t, sizeof(t));
	}
	return n;
}

#define FOLLOW_CHUNK	(1u << 20)	/* read from the live file per poll, at most */

/*
 * One poll of tail -f: the records from follow_next on, wherever they are.
 * While the file is only appended to, only what follows the offset where the
 * last poll stopped is read (up to FOLLOW_CHUNK: 2 says there may be more,
 * to be read at once); after a rotation (the record there is not the next
 * one) the rotated files are read first, then the new file from its start.
 * 1 when the file cannot be read now.
 */
static int
follow_poll(const char *path, size_t *off)
{
	static char	names[FOLLOW_FILES_MAX][FOLLOW_PATH_MAX];
	static int	unreadable;	/* the last poll could not read path */
	uint8_t		*head, *buf = NULL, *b;
	uint64_t	first, size, there;
	size_t		hlen, len = 0, blen, o;
	int		n, i, os_err, rc;

	if ((rc = wfpb__file_read_at(path, 0, 4 + WFPB_AUDIT_RECORD_MAX, &head, &hlen, &size, &os_err)) != 0) {
		/* Said once until it can be read again, not at every poll while the broker is away. */
		if (!unreadable)
			fprintf(stderr, "wfpbctl: cannot read %s (%s); trying again at every poll\n", path,
			    rc == WFPB_E_NOENT ? "no such file" : wfpb_strerror(rc));
		unreadable = 1;
		return 1;
	}
	if (unreadable)
		fprintf(stderr, "wfpbctl: %s can be read again\n", path);
	unreadable = 0;
	/*
	 * Rotated since the last poll: the file now starts with another record, or is shorter, or
	 * does not hold the next record where the old one ended. (The offset alone cannot tell:
	 * a new file can end exactly where the old one did.)
	 */
	first = record_at(head, hlen, 0, NULL, 0);
	if (*off <= size && wfpb__file_read_at(path, *off, FOLLOW_CHUNK, &buf, &len, &size, &os_err) != 0) {
		free(head);
		return 1;
	}
	/*
	 * In the same file the record at the offset is the next one, or one before it still to be
	 * passed over (a follower resuming mid-file reads it a chunk at a time); in a new file it is
	 * later than the next. A record still being written there is read at the next poll.
	 */
	there = record_at(buf, len, 0, NULL, 0);
	if (*off > size || first != follow_first || (there != 0 && there > follow_next)) {
		/*
		 * The file is read again from its start, and the rotated files are found from what
		 * that read holds: the head read above may be of the file before a rotation that
		 * happened between the two reads, and would name none of the files behind.
		 */
		*off = 0;
		free(buf);
		if (wfpb__file_read_at(path, 0, FOLLOW_CHUNK, &buf, &len, &size, &os_err) != 0) {
			free(head);
			return 1;
		}
		first = record_at(buf, len, 0, NULL, 0);
		n = rotated_behind(path, buf, len, names, FOLLOW_FILES_MAX);
		for (i = 0; i < n; i++) {
			/* A rotated file that cannot be read now is tried again at the next poll, not passed over. */
			if (wfpb__file_read_all(names[i], WFPB_AUDIT_FILE_MAX, &b, &blen, &os_err) != 0) {
				free(head);
				free(buf);
				return 1;
			}
			o = 0;
			(void)walk(b, blen, &o, follow_next, print_followed);
			free(b);
		}
	}
	o = 0;
	(void)walk(buf, len, &o, follow_next, print_followed);
	*off += o;
	follow_first = first;
	free(head);
	free(buf);
	return len == FOLLOW_CHUNK ? 2 : 0;
}

static uint64_t
count_records(const uint8_t *buf, size_t len)
{
	struct wfpb_audit_report rep;

	/* tail shows what is there, verified or not: verification is `audit verify`'s job. */
	if (wfpb_audit_verify(buf, len, NULL, &rep) != 0)
		return rep.last_seq;
	return rep.last_seq;
}

static int
tail(int argc, char **argv)
{
	const char	*file = NULL;
	uint8_t		*buf;
	size_t		len, off = 0;
	long		n = 20;
	int		i, follow = 0;
	uint64_t	last;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0)
			follow = 1;
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = strtol(argv[++i], NULL, 10);
		else if (file == NULL)
			file = argv[i];
		else
			return 2;
	}
	if (file == NULL || n < 0)
		return 2;
	if (read_log(file, &buf, &len) != 0)
		return 1;
	last = count_records(buf, len);
	follow_next = last >= (uint64_t)n ? last - (uint64_t)n + 1 : 0;
	(void)walk(buf, len, &off, follow_next, print_followed);
	follow_first = record_at(buf, len, 0, NULL, 0);
	free(buf);
	if (follow) {
		struct wfpb_file_watch *w = wfpb__file_watch_open(file);

		for (;;) {
			fflush(stdout);
			/* A log being rotated may be missing for an instant: try again at the next poll. */
			if (follow_poll(file, &off) != 2)
				wfpb__file_watch_wait(w, 500);
		}
	}
	return 0;
}

/* DIR/audit.pub for DIR/audit.log (or a rotated DIR/audit.log.N), when that file exists. */
static int
audit_pub_beside(const char *log, char *out, size_t cap)
{
	const char	*slash = strrchr(log, '/');
	FILE		*f;
	int		n;

#ifdef _WIN32
	const char *bs = strrchr(log, '\\');

	if (bs != NULL && (slash == NULL || bs > slash))
		slash = bs;
#endif
	n = slash != NULL ? snprintf(out, cap, "%.*s/audit.pub", (int)(slash - log), log) : snprintf(out, cap,
	    "audit.pub");
	if (n < 0 || (size_t)n >= cap || (f = fopen(out, "r")) == NULL)
		return -1;
	fclose(f);
	return 0;
}

/* This machine's name, for the "host" of each line. */
static void
host_name(char *out, size_t cap)
{
#ifdef _WIN32
	DWORD n = (DWORD)cap;

	if (!GetComputerNameExA(ComputerNameDnsFullyQualified, out, &n) && !GetComputerNameA(out, &n))
		out[0] = '\0';
#else
	if (gethostname(out, cap) != 0)
		out[0] = '\0';
	out[cap - 1] = '\0';
#endif
}

/* The last seq the cursor file says was delivered; 0 when there is none yet. */
static uint64_t
cursor_read(const char *path)
{
	char		buf[32] = "";
	uint64_t	seq = 0;
	FILE		*f = fopen(path, "r");
	size_t		i;

	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL)
		for (i = 0; buf[i] >= '0' && buf[i] <= '9'; i++)
			seq = seq * 10 + (uint64_t)(buf[i] - '0');
	fclose(f);
	return seq;
}

/* Records seq as delivered: a new file, synced, renamed over the old one (never a half-written cursor). */
static int
cursor_write(const char *path, uint64_t seq)
{
	char	tmp[4096], text[32];
	int	n = snprintf(tmp, sizeof(tmp), "%s.tmp", path), rc;

	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)seq);
	rc = wfpb__file_replace(tmp, path, text, (size_t)n);
	return rc;
}

/*
 * export --json --follow [--cursor FILE]: every record as it becomes durable, across
 * rotations and broker restarts, from the one after the cursor's. The cursor advances only
 * after the lines before it were written out (and synced, when the output is a file), so
 * after a crash of the follower a record may be sent twice but never skipped.
 */
static int
follow_json(const char *file, const char *cursor, unsigned poll_ms)
{
	uint64_t		saved = cursor != NULL ? cursor_read(cursor) : 0, written;
	struct wfpb_file_watch	*w = wfpb__file_watch_open(file);	/* NULL: it sleeps its poll */
	size_t			off = 0;

	follow_print = print_json;
	follow_next = written = saved + 1;
	for (;;) {
		/* A log being rotated may be missing for an instant: try again at the next poll. */
		int more = follow_poll(file, &off) == 2;

		/* Only a poll that wrote lines has anything to flush, sync and record. */
		if (follow_next != written) {
			if (fflush(stdout) != 0 || wfpb__file_sync_stdout() != 0) {
				fprintf(stderr, "wfpbctl: audit export --follow: writing the output failed\n");
				wfpb__file_watch_close(w);
				return 1;
			}
			written = follow_next;
			if (cursor != NULL && cursor_write(cursor, follow_next - 1) != 0) {
				fprintf(stderr, "wfpbctl: audit export --follow: cannot write the cursor %s\n", cursor);
				wfpb__file_watch_close(w);
				return 1;
			}
		}
		if (!more)
			wfpb__file_watch_wait(w, poll_ms);
	}
}

#ifdef WFPB_HAVE_RELP
/*
 * export --json --follow --relp HOST:PORT: each record as one RFC 5424 message over RELP
 * (relp.h), the JSON line as its MSG and the seq in structured data. Records wait in a
 * queue from the moment they are read until the collector acknowledged them; the cursor
 * moves only past acknowledged ones, so a follower killed, a collector restarted or a
 * connection lost resends from the oldest unacknowledged record: a record may be sent
 * twice, never skipped. A record the collector refuses is sent again (with back-off),
 * not passed over: the follower stalls and says so rather than leave a gap.
 */
#define RELP_QUEUE_MAX	4096
#define RELP_SD_ID	"wfpbroker@32473"	/* docs/DECISIONS.md: no enterprise number of our own */
#define DELAY_BUCKETS	60001			/* 1 ms each; the last one holds a minute and more */

struct queued {
	uint64_t	seq, time_ms;
	char		*msg;
	size_t		len;
};

static struct {
	struct queued	q[RELP_QUEUE_MAX];	/* a ring, oldest first */
	size_t		head, count;
	size_t		sent;			/* q[head..head+sent) went out on the current session */
	int		full;			/* a poll stopped at a full queue: poll again when there is room */
	uint32_t	delay[DELAY_BUCKETS];	/* record time -> acknowledgement, ms */
	uint64_t	acked;
} relp_q;

static volatile sig_atomic_t relp_stop;

static uint64_t
mono_ms(void)
{
	return wfpb_monotonic_us() / 1000;
}

static void
relp_on_signal(int sig)
{
	(void)sig;
	relp_stop = 1;
}

/* The HOSTNAME of RFC 5424: printable US-ASCII, at most 255, "-" when there is none. */
static void
syslog_host(const char *in, char out[256])
{
	size_t i;

	for (i = 0; in[i] != '\0' && i < 255; i++)
		out[i] = in[i] > 32 && in[i] < 127 ? in[i] : '_';
	out[i] = '\0';
	if (i == 0)
		snprintf(out, 256, "-");
}

static int
queue_record(const Wfpbroker__V1__AuditRecord *r, const uint8_t *framed, size_t framed_len)
{
	char		*msg = NULL, when[WFPB_RFC3339_LEN], host[256], key[2 * WFPB_AUDIT_HASH_LEN + 1] = "";
	size_t		len = 0;
	FILE		*f;
	struct queued	*e;

	if (relp_q.count == RELP_QUEUE_MAX) {
		relp_q.full = 1;
		return 1;
	}
	wfpb_rfc3339(r->time_unix_ms, when);
	syslog_host(line_ctx.host, host);
	if (line_ctx.has_key)
		sodium_bin2hex(key, sizeof(key), line_ctx.key_fingerprint, WFPB_AUDIT_HASH_LEN);
	/* The header, then the JSON line as MSG, in one buffer. <110>: facility 13 (log audit), severity 6. */
	if ((f = open_memstream(&msg, &len)) == NULL)
		return 1;
	fprintf(f, "<110>1 %s %s wfpbroker - audit [" RELP_SD_ID " seq=\"%llu\"%s%s%s] ", when, host,
	    (unsigned long long)r->seq, key[0] ? " audit_key=\"" : "", key, key[0] ? "\"" : "");
	int bad = json_line(f, r, framed, framed_len) != 0;

	if (fclose(f) != 0 || bad || len == 0 || msg[len - 1] != '\n') {
		free(msg);
		return 1;
	}
	e = &relp_q.q[(relp_q.head + relp_q.count) % RELP_QUEUE_MAX];
	e->seq = r->seq;
	e->time_ms = r->time_unix_ms;
	e->msg = msg;
	e->len = len - 1;	/* without the line's newline: a syslog message ends where its frame does */
	relp_q.count++;
	return 0;
}

/* The n oldest records were acknowledged: out of the queue, their delay counted. */
static uint64_t
dequeue_acked(size_t n, uint64_t acked_seq)
{
	uint64_t now = wfpb__wall_ms();

	while (n-- > 0 && relp_q.count > 0) {
		struct queued	*e = &relp_q.q[relp_q.head];
		uint64_t	d = now > e->time_ms ? now - e->time_ms : 0;

		relp_q.delay[d < DELAY_BUCKETS - 1 ? d : DELAY_BUCKETS - 1]++;
		relp_q.acked++;
		acked_seq = e->seq;
		free(e->msg);
		e->msg = NULL;
		relp_q.head = (relp_q.head + 1) % RELP_QUEUE_MAX;
		relp_q.count--;
		relp_q.sent--;
	}
	return acked_seq;
}

static unsigned
delay_percentile(unsigned pct)
{
	uint64_t	want = (relp_q.acked * pct + 99) / 100, seen = 0;
	unsigned	i;

	for (i = 0; i < DELAY_BUCKETS; i++)
		if ((seen += relp_q.delay[i]) >= want && want > 0)
			return i;
	return 0;
}

static int
follow_relp(const char *file, const char *cursor, const struct wfpb_relp_config *cfg, unsigned poll_ms, int stats)
{
	struct wfpb_relp	*c = NULL;
	struct wfpb_file_watch	*w = wfpb__file_watch_open(file);	/* NULL: it sleeps its poll */
	struct sigaction	sa;
	uint64_t		acked_seq = cursor != NULL ? cursor_read(cursor) : 0, written = acked_seq;
	uint64_t		now, next_poll = 0, retry_at = 0, cursor_at = 0;
	unsigned		backoff = 0;
	size_t			off = 0, n;
	char			err[256];

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = relp_on_signal;
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	/* A collector that goes away mid-write is an error to handle, not a signal that kills. */
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	follow_print = queue_record;
	follow_next = acked_seq + 1;
	while (!relp_stop) {
		now = mono_ms();
		if (c == NULL && now >= retry_at) {
			if (wfpb_relp_connect(cfg, &c, err, sizeof(err)) != 0) {
				backoff = backoff == 0 ? 500 : backoff >= 15000 ? 30000 : backoff * 2;
				retry_at = now + backoff;
				fprintf(stderr, "wfpbctl: audit export --relp %s:%s: %s; trying again in %u ms\n",
				    cfg->host, cfg->port, err, backoff);
				c = NULL;
			} else {
				if (backoff != 0)
					fprintf(stderr, "wfpbctl: audit export --relp %s:%s: connected; sending from seq "
					    "%llu\n", cfg->host, cfg->port, (unsigned long long)acked_seq + 1);
				backoff = 0;
				relp_q.sent = 0;	/* what the last session did not acknowledge goes again */
			}
		}
		/* The log was written (the directory watch): read it now, not at the next poll. */
		if (wfpb__file_watch_changed(w))
			next_poll = now;
		/*
		 * A full queue is not polled into (the records it cannot take stay in the file); it is
		 * polled again once half of it was acknowledged, not for every few answers.
		 */
		if ((now >= next_poll && relp_q.count < RELP_QUEUE_MAX) || (relp_q.full && relp_q.count <= RELP_QUEUE_MAX / 2)) {
			relp_q.full = 0;
			/* More in the file than one poll reads: the next turn reads on (when the queue has room). */
			next_poll = follow_poll(file, &off) == 2 && !relp_q.full ? now : now + poll_ms;
		}
		while (c != NULL && relp_q.sent < relp_q.count && wfpb_relp_unacked(c) < cfg->window) {
			struct queued *e = &relp_q.q[(relp_q.head + relp_q.sent) % RELP_QUEUE_MAX];

			if (wfpb_relp_send(c, e->msg, e->len, err, sizeof(err)) != 0)
				goto broken;
			relp_q.sent++;
		}
		now = mono_ms();
		{
			/* Nothing to read while the queue is full: then only answers can make progress. */
			uint64_t	until = relp_q.full || relp_q.count == RELP_QUEUE_MAX ? now + poll_ms : next_poll;
			int		wait;

			if (c == NULL && retry_at < until)
				until = retry_at;
			wait = until > now ? (int)(until - now) : 0;
			if (c != NULL && wfpb_relp_unacked(c) > 0) {
				int rc = wfpb_relp_acks(c, wait, &n, err, sizeof(err));

				/* What was acknowledged before a break counts; the rest goes again. */
				acked_seq = dequeue_acked(n, acked_seq);
				if (rc != 0)
					goto broken;
			} else if (wait > 0)
				wfpb__file_watch_wait(w, (unsigned)wait);
		}
		goto cursor;
broken:
		fprintf(stderr, "wfpbctl: audit export --relp %s:%s: %s; sending again from seq %llu\n", cfg->host,
		    cfg->port, err, (unsigned long long)acked_seq + 1);
		wfpb_relp_close(c, 0);
		c = NULL;
		relp_q.sent = 0;
		retry_at = mono_ms() + (backoff ? backoff : 100);
cursor:
		/* Synced and renamed at most five times a second under load; at once when all is acknowledged. */
		if (acked_seq != written && (relp_q.count == 0 || mono_ms() >= cursor_at)) {
			if (cursor != NULL && cursor_write(cursor, acked_seq) != 0) {
				fprintf(stderr, "wfpbctl: audit export --follow: cannot write the cursor %s\n", cursor);
				wfpb_relp_close(c, 0);
				wfpb__file_watch_close(w);
				return 1;
			}
			written = acked_seq;
			cursor_at = mono_ms() + 200;
		}
	}
	wfpb__file_watch_close(w);
	/* Stopped: what the collector still acknowledges within the timeout counts, then a polite close. */
	if (c != NULL)
		acked_seq = dequeue_acked(wfpb_relp_stop(c, cfg->timeout_ms), acked_seq);
	if (cursor != NULL && acked_seq != written && cursor_write(cursor, acked_seq) != 0) {
		fprintf(stderr, "wfpbctl: audit export --follow: cannot write the cursor %s\n", cursor);
		return 1;
	}
	if (stats)
		fprintf(stderr, "relp: %llu records acknowledged, last seq %llu; record time to acknowledgement "
		    "p50 %u ms, p99 %u ms\n", (unsigned long long)relp_q.acked, (unsigned long long)acked_seq,
		    delay_percentile(50), delay_percentile(99));
	return 0;
}

/* HOST:PORT or [ADDRESS]:PORT into cfg->host and cfg->port (pointing into buf). */
static int
relp_target(const char *arg, char *buf, size_t cap, struct wfpb_relp_config *cfg)
{
	char *colon;

	if (snprintf(buf, cap, "%s", arg) >= (int)cap)
		return -1;
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		*close = '\0';
		cfg->host = buf + 1;
		colon = close + 1;
	} else {
		if ((colon = strrchr(buf, ':')) == NULL)
			return -1;
		*colon = '\0';
		cfg->host = buf;
	}
	cfg->port = colon + 1;
	return cfg->host[0] != '\0' && cfg->port[0] != '\0' ? 0 : -1;
}
#endif

/*
 * audit export --json FILE [--pubkey KEY]: every record, one JSON object a
 * line, then the verdict: exit 0 only when the chain verified (hash links and
 * seq; with --pubkey the checkpoint signatures too), else 1 with the reason
 * on stderr. What a SIEM ingests must not be a log someone altered in silence.
 */
static int
export_json(int argc, char **argv)
{
	struct wfpb_audit_report	rep;
	uint8_t				*buf, pk[32];
	const char			*file = NULL, *key = NULL, *cursor = NULL, *relp = NULL, *output = NULL;
	char				beside[4096];
	size_t				len, off = 0;
	int				i, rc, follow = 0, stats = 0;
	uint32_t			poll_ms = 250;
#ifdef WFPB_HAVE_RELP
	struct wfpb_relp_config		rc_cfg = { .window = WFPB_RELP_WINDOW_MAX, .timeout_ms = 10000 };
	char				target[512];
#endif

	if (argc < 2 || strcmp(argv[0], "--json") != 0)
		return 2;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pubkey") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--cursor") == 0 && i + 1 < argc)
			cursor = argv[++i];
		else if (strcmp(argv[i], "--follow") == 0)
			follow = 1;
		else if (strcmp(argv[i], "--output") == 0 && i + 1 < argc)
			output = argv[++i];
		else if (strcmp(argv[i], "--poll-ms") == 0 && i + 1 < argc) {
			if (wfpb_parse_u32(argv[++i], 10, 60000, &poll_ms) != 0)
				return 2;
		} else if (strcmp(argv[i], "--stats") == 0)
			stats = 1;
		else if (strcmp(argv[i], "--relp") == 0 && i + 1 < argc)
			relp = argv[++i];
#ifdef WFPB_HAVE_RELP
		else if (strcmp(argv[i], "--relp-ca") == 0 && i + 1 < argc)
			rc_cfg.ca_file = argv[++i];
		else if (strcmp(argv[i], "--relp-cert") == 0 && i + 1 < argc)
			rc_cfg.cert_file = argv[++i];
		else if (strcmp(argv[i], "--relp-key") == 0 && i + 1 < argc)
			rc_cfg.key_file = argv[++i];
		else if (strcmp(argv[i], "--relp-name") == 0 && i + 1 < argc)
			rc_cfg.server_name = argv[++i];
		else if (strcmp(argv[i], "--relp-window") == 0 && i + 1 < argc) {
			if (wfpb_parse_u32(argv[++i], 1, WFPB_RELP_WINDOW_MAX, &rc_cfg.window) != 0)
				return 2;
		}
#endif
		else if (file == NULL && argv[i][0] != '-')
			file = argv[i];
		else
			return 2;
	}
	if (file == NULL || (cursor != NULL && !follow) || (relp != NULL && !follow) || (output != NULL && relp != NULL))
		return 2;
	/*
	 * The lines go to this file, appended (created with the umask's mode: the shipped
	 * unit's 0027 makes it its owner's and the reader group's), as to standard output.
	 */
	if (output != NULL && freopen(output, "ab", stdout) == NULL) {
		fprintf(stderr, "wfpbctl: --output %s: cannot open it for appending\n", output);
		return 1;
	}
#ifdef WFPB_HAVE_RELP
	if (relp != NULL && relp_target(relp, target, sizeof(target), &rc_cfg) != 0) {
		fprintf(stderr, "wfpbctl: --relp %s: give HOST:PORT or [ADDRESS]:PORT\n", relp);
		return 2;
	}
	if (rc_cfg.cert_file == NULL && rc_cfg.key_file != NULL)
		return 2;
	if (relp == NULL && (rc_cfg.ca_file != NULL || rc_cfg.cert_file != NULL || rc_cfg.server_name != NULL))
		return 2;
	if (rc_cfg.ca_file == NULL && rc_cfg.cert_file != NULL) {
		fprintf(stderr, "wfpbctl: --relp-cert needs --relp-ca (a certificate is only sent over TLS)\n");
		return 2;
	}
#else
	if (relp != NULL) {
		fprintf(stderr, "wfpbctl: --relp is not in this build; ship the JSON lines instead (docs/AUDIT.md)\n");
		return 1;
	}
#endif
	if (key == NULL && audit_pub_beside(file, beside, sizeof(beside)) == 0)
		key = beside;	/* the broker's layout: audit.pub next to audit.log */
	if (key != NULL && (rc = wfpb_keyfile_load_public(key, pk)) != 0) {
		fprintf(stderr, "wfpbctl: audit public key %s: %s\n", key, wfpb_strerror(rc));
		return 1;
	}
	memset(&line_ctx, 0, sizeof(line_ctx));
	host_name(line_ctx.host, sizeof(line_ctx.host));
	if (key != NULL) {
		crypto_generichash(line_ctx.key_fingerprint, sizeof(line_ctx.key_fingerprint), pk, sizeof(pk), NULL, 0);
		line_ctx.has_key = 1;
	}
#ifdef WFPB_HAVE_RELP
	if (relp != NULL)
		return follow_relp(file, cursor, &rc_cfg, poll_ms, stats);
#endif
	(void)stats;
	if (follow)
		return follow_json(file, cursor, poll_ms);
	if (read_log(file, &buf, &len) != 0)
		return 1;
	(void)walk(buf, len, &off, 0, print_json);
	rc = wfpb_audit_verify(buf, len, key != NULL ? pk : NULL, &rep);
	free(buf);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "wfpbctl: audit export: writing the output failed\n");
		return 1;
	}
	if (rc != 0) {
		fprintf(stderr, "wfpbctl: %s: does not verify at seq %llu: %s\n", file, (unsigned long long)rep.bad_seq,
		    rep.error);
		return 1;
	}
	return 0;
}

int
wfpbctl_audit(int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "verify") == 0)
		return verify(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "tail") == 0)
		return tail(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "export") == 0)
		return export_json(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "verify-collected") == 0)
		return wfpbctl_verify_collected(argc - 1, argv + 1);
	return 2;
}
