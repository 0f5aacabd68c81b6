/* SPDX-License-Identifier: Apache-2.0 */
/* wfpbctl's audit subcommands (audit_cmd.c). Returns an exit status; 2 means bad usage. */
#ifndef WFPBCTL_AUDIT_CMD_H
#define WFPBCTL_AUDIT_CMD_H

#include <stddef.h>
#include <stdint.h>

int wfpbctl_audit(int argc, char **argv);

/* audit verify-collected FILE... --keys DIR [options] (audit_collect.c). */
int wfpbctl_verify_collected(int argc, char **argv);

/* The name of an enum value as the .proto spells it ("AUDIT_CHECKPOINT", "OK"), "UNKNOWN" for one it lacks. */
struct ProtobufCEnumDescriptor;
const char *wfpbctl_enum_name(const struct ProtobufCEnumDescriptor *d, int v);

/* An audit record's address as the exported lines write it ("127.0.0.1:80", "[::1]:80"); out holds 64. */
struct Wfpbroker__V1__Address;
void wfpbctl_addr_text(const struct Wfpbroker__V1__Address *a, char out[64]);

/* What an exported line carries besides its record: added by the exporting host, not signed. */
struct wfpbctl_line_extra {
	const char	*host;			/* the host's name, host_len bytes; NULL or 0: none */
	size_t		host_len;
	const uint8_t	*key_fingerprint;	/* 32 bytes: BLAKE2b-256 of the audit key; NULL: none */
	const char	*user_name;		/* the principal's account name; NULL or 0: none */
	size_t		user_name_len;
};

/*
 * Writes one record as the exporter's JSON object (no newline: wfpb_json_end adds it), the
 * one definition of an exported line for the exporter and the centre's verifier alike.
 */
struct wfpb_json;
struct Wfpbroker__V1__AuditRecord;
void wfpbctl_record_json(struct wfpb_json *j, const struct Wfpbroker__V1__AuditRecord *r, const uint8_t *framed,
    size_t framed_len, const struct wfpbctl_line_extra *x);

/* Sleeps for ms milliseconds (audit tail -f). */
void wfpb__sleep_ms(unsigned ms);

#endif
