/* Broker lifetime: configuration ownership and the guarded static key. */
#include <string.h>

#include <sodium.h>

#include "broker.h"

int
wfpb_broker_init(struct wfpb_broker *b, struct wfpb_config *cfg, const struct wfpb_noise_keypair *key,
    uint64_t now_ms)
{
	memset(b, 0, sizeof(*b));
	if ((b->key = sodium_malloc(sizeof(*b->key))) == NULL)
		return WFPB_E_NOMEM;
	memcpy(b->key, key, sizeof(*key));
	sodium_mprotect_readonly(b->key);
	b->cfg = *cfg;
	cfg->keys = NULL;
	cfg->nkeys = 0;
	b->start_ms = now_ms;
	return 0;
}

void
wfpb_broker_reload(struct wfpb_broker *b, struct wfpb_config *cfg)
{
	wfpb_config_free(&b->cfg);
	b->cfg = *cfg;
	cfg->keys = NULL;
	cfg->nkeys = 0;
}

void
wfpb_broker_fini(struct wfpb_broker *b)
{
	wfpb_config_free(&b->cfg);
	sodium_free(b->key);	/* wipes */
	b->key = NULL;
}
