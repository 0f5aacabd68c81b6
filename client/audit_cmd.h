/* SPDX-License-Identifier: Apache-2.0 */
/* wfpbctl's audit subcommands (audit_cmd.c). Returns an exit status; 2 means bad usage. */
#ifndef WFPBCTL_AUDIT_CMD_H
#define WFPBCTL_AUDIT_CMD_H

int wfpbctl_audit(int argc, char **argv);

/* audit verify-collected FILE... --keys DIR [--json] [--silent-after S] (audit_collect.c). */
int wfpbctl_verify_collected(int argc, char **argv);

/* The name of an enum value as the .proto spells it ("AUDIT_CHECKPOINT", "OK"), "UNKNOWN" for one it lacks. */
struct ProtobufCEnumDescriptor;
const char *wfpbctl_enum_name(const struct ProtobufCEnumDescriptor *d, int v);

/* An audit record's address as the exported lines write it ("127.0.0.1:80", "[::1]:80"); out holds 64. */
struct Wfpbroker__V1__Address;
void wfpbctl_addr_text(const struct Wfpbroker__V1__Address *a, char out[64]);

/* Sleeps for ms milliseconds (audit tail -f). */
void wfpb__sleep_ms(unsigned ms);

#endif
