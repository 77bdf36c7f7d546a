#ifndef RP_KEYS_AUDIT_H
#define RP_KEYS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "rp_compiler.h"
#include "rp_err.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The audit log: <store>/audit.log, one record per line, append-only and
 * chained: each record's MAC is HMAC-SHA-256 (under a world-derived key) of
 * the previous record's MAC and this record's text, so a changed, removed,
 * inserted or reordered record breaks the chain. <store>/audit.head holds
 * the last record's number and MAC (itself MACed), so cutting records off
 * the end is detected too.
 *
 * A record's fields, tab-separated: number, time (UTC), user, host, the
 * operation, the key id (or "-"), free detail, MAC (hex). Tabs, line
 * breaks and backslashes inside fields are escaped.
 */
#define RP_AUDIT_FIELD_MAX 512

struct rp_audit_record {
	uint64_t seq;
	char time[32];
	char user[64];
	char host[128];
	char op[64];
	char key[2 * 32 + 1];
	char detail[RP_AUDIT_FIELD_MAX];
};

/*
 * rp_audit_append appends one record for operation `op` on key `key_id`
 * (NULL for none), with a formatted detail. Serialised by a lock on the
 * log file, so concurrent commands append in turn.
 */
RP_MUST_CHECK enum rp_err rp_audit_append(struct rp_store *s,
					  struct rp_status *st, const char *op,
					  const uint8_t *key_id,
					  const char *fmt, ...) RP_PRINTF(5, 6);

/*
 * rp_audit_flush_usage appends one "usage" record per key used since the
 * store was opened (counts of unwrap and sign, first and last time) for
 * command `command`, and resets the counts.
 */
RP_MUST_CHECK enum rp_err rp_audit_flush_usage(struct rp_store *s,
					       struct rp_status *st,
					       const char *command);

typedef void rp_audit_record_fn(void *arg, const struct rp_audit_record *r);

/*
 * rp_audit_verify reads the whole log, checks the chain and the head, and
 * calls `fn` (if not NULL) for each good record, in order. RP_ERR_AUTH
 * naming the first bad record (changed, inserted, removed, reordered) or
 * the cut-off tail.
 */
RP_MUST_CHECK enum rp_err rp_audit_verify(struct rp_store *s,
					  struct rp_status *st,
					  rp_audit_record_fn *fn, void *arg,
					  uint64_t *out_num);

#ifdef __cplusplus
}
#endif
#endif
