#ifndef RP_FORMATS_RUN_REPORT_H
#define RP_FORMATS_RUN_REPORT_H

#include <stddef.h>

#include <jansson.h>

#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Run reports (docs/OPERATIONS.md, "Scale-out"): the JSON a `run` or
 * `verify` writes with --report, and the merge of the reports of one
 * run's shards. A shard report names its run in "run": the store, mode,
 * dry_run, roots, from, source_keys, target_key and shard {index, of}.
 * Shards of one run agree on all of it but the shard index.
 *
 * The merge reads only the fields it needs and checks each one's type;
 * a report without them (another program's, an older version's) does not
 * merge. Nothing here touches a file: the caller reads the reports.
 */
#define RP_REPORT_MAX_SHARDS 4096
#define RP_REPORT_MAX_ROOTS  64
#define RP_REPORT_MAX	     ((size_t)1 << 30) /* 1 GiB of JSON per shard */

/* one shard report as read: a name for messages and its bytes */
struct rp_report_in {
	const char *name;
	const char *buf;
	size_t len;
};

/* what the shards say together, worst first */
enum rp_report_verdict {
	RP_REPORT_COMPLETE = 0,	  /* every shard there, finished, all fine */
	RP_REPORT_PARTIAL = 1,	  /* finished, some documents failed or busy */
	RP_REPORT_RETIRING = 2,	  /* finished, documents under a retiring key */
	RP_REPORT_STOPPED = 3,	  /* a shard was stopped: run it again */
	RP_REPORT_INCOMPLETE = 4, /* a shard missing or given twice */
};

/*
 * rp_report_merge parses `num` (1 .. RP_REPORT_MAX_SHARDS) shard reports
 * and puts them together into *out (a new object; json_decref it): its
 * "shards" names those present, missing, given twice, stopped and not
 * finished cleanly; totals per outcome and per key, bytes, the wall time
 * from the first start to the last end and the rates over it, the
 * slowest shard, and every skipped or failed document with its shard.
 * A shard given twice counts once (the first given). *verdict says what
 * the whole is.
 *
 * Fails with RP_ERR_FORMAT when a report is not a run report (st names
 * it and the field), RP_ERR_USAGE when two are of different runs (st
 * names both and what differs); *out is then NULL.
 */
enum rp_err rp_report_merge(json_t **out, enum rp_report_verdict *verdict,
			    struct rp_status *st, const struct rp_report_in *in,
			    size_t num);

#ifdef __cplusplus
}
#endif
#endif
