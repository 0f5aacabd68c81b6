/* SPDX-License-Identifier: Apache-2.0 */
/* Keys as text (keyfile.h): 64 hex digits, the form of server.pub and of a policy's `key =`. Pure: no files. */
#include <string.h>

#include <sodium.h>

#include "keyfile.h"

int
wfpb_key_from_hex(const char *hex, size_t len, uint8_t key[WFPB_NOISE_DHLEN])
{
	size_t	bin_len;

	while (len > 0 && (hex[len - 1] == '\n' || hex[len - 1] == '\r' || hex[len - 1] == ' ' ||
	    hex[len - 1] == '\t'))
		len--;
	while (len > 0 && (*hex == ' ' || *hex == '\t')) {
		hex++;
		len--;
	}
	if (len != WFPB_KEY_HEXLEN)
		return WFPB_E_KEYFILE;
	if (sodium_hex2bin(key, WFPB_NOISE_DHLEN, hex, len, NULL, &bin_len, NULL) != 0 ||
	    bin_len != WFPB_NOISE_DHLEN)
		return WFPB_E_KEYFILE;
	return 0;
}

void
wfpb_key_to_hex(const uint8_t key[WFPB_NOISE_DHLEN], char out[WFPB_KEY_HEXLEN + 1])
{
	sodium_bin2hex(out, WFPB_KEY_HEXLEN + 1, key, WFPB_NOISE_DHLEN);
}
