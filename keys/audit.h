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
#define RP_AUDIT_LINE_MAX  4096 /* a record's line, newline excluded */

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
 * store was opened (counts of unwrap and sign, first and last time; for a
 * key with replicas, its unwraps per token: "unwrap_tokens=A:N,B:M") for
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

/*
 * The pure parsers under rp_audit_verify and rp_audit_append: they take
 * the bytes of <store>/audit.head and audit.log and the store's audit
 * key (derived from the world key), and touch no file.
 */

/*
 * rp_audit_head_decode checks an audit.head file's bytes and returns the
 * last record's number and MAC, and the keyring generation it holds
 * (out_gen may be NULL; 0 for a head of the first format). RP_ERR_AUTH if it is
 * damaged or its MAC differs (then out_seq is 0 and out_last zero).
 */
RP_MUST_CHECK enum rp_err
rp_audit_head_decode(struct rp_status *st, uint64_t *out_seq,
		     uint8_t out_last[RP_ATLEAST(32)], uint64_t *out_gen,
		     const uint8_t audit_key[RP_ATLEAST(32)], const uint8_t *in,
		     size_t in_len);

/*
 * The keyring's generation watermark (docs/OPERATIONS.md, "Rollback"):
 * audit.head also holds the highest keyring generation the store has
 * written. rp_audit_note_generation raises it to `gen` (never lowers it),
 * under the log's lock; the store calls it after each keyring write.
 * rp_audit_generation reads it (0: none yet, or a head of before
 * 2026-12-06); RP_ERR_AUTH when audit.log goes on more than one record
 * past its head (the head, and the keyring with it, copied back).
 */
RP_MUST_CHECK enum rp_err rp_audit_note_generation(struct rp_store *s,
						   struct rp_status *st,
						   uint64_t gen);
RP_MUST_CHECK enum rp_err rp_audit_generation(const struct rp_store *s,
					      struct rp_status *st,
					      uint64_t *out_gen);

/*
 * rp_audit_log_check checks a whole audit.log against the head's
 * `head_seq` and `head_mac` (0 and anything: no head) as rp_audit_verify
 * does, calling `fn` for each good record; stores the number of records
 * read in out_num (if not NULL). RP_ERR_AUTH naming the first bad record.
 */
RP_MUST_CHECK enum rp_err
rp_audit_log_check(struct rp_status *st, uint64_t *out_num,
		   rp_audit_record_fn *fn, void *arg,
		   const uint8_t audit_key[RP_ATLEAST(32)], uint64_t head_seq,
		   const uint8_t head_mac[RP_ATLEAST(32)], const uint8_t *log,
		   size_t log_len);

/*
 * rp_audit_adopt_tail looks at the last bytes of audit.log (at most
 * RP_AUDIT_LINE_MAX, ending in a newline): if its last line is record
 * *seq + 1 and chains from `last`, it moves *seq and `last` on to it (a
 * crash between appending a record and writing the head). Anything else
 * leaves them as they are and returns RP_OK; fails only on a crypto
 * error.
 */
RP_MUST_CHECK enum rp_err
rp_audit_adopt_tail(struct rp_status *st, uint64_t *seq,
		    uint8_t last[RP_ATLEAST(32)],
		    const uint8_t audit_key[RP_ATLEAST(32)], const uint8_t *in,
		    size_t in_len);

#ifdef __cplusplus
}
#endif
#endif
