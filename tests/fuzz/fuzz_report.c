/*
 * fuzz_report: rp_report_merge (the shard reports a user hands to
 * 'report merge'). The input is split at each NUL byte into 1..8
 * reports. When they merge:
 *   - every shard 0..N-1 is listed exactly once as present or missing;
 *   - the verdict is "complete" only if none is missing, given twice or
 *     stopped;
 *   - the merged outcome totals are the sums of the shards' first
 *     reports (none overflowed).
 * Failures are RP_ERR_FORMAT, RP_ERR_USAGE or RP_ERR_NOMEM.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "run_report.h"

#define MAX_IN 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_report_in in[MAX_IN];
	struct rp_status st = { 0 };
	enum rp_report_verdict v;
	const json_t *shards;
	json_t *m = NULL;
	json_int_t of;
	size_t num = 0, start = 0;
	enum rp_err err;

	for (size_t i = 0; i <= size && num < MAX_IN; i++) {
		if (i == size || !data[i]) {
			in[num].name = "r";
			in[num].buf = (const char *)data + start;
			in[num].len = i - start;
			num++;
			start = i + 1;
		}
	}
	err = rp_report_merge(&m, &v, &st, in, num);
	if (err) {
		CHECK(err == RP_ERR_FORMAT || err == RP_ERR_USAGE ||
		      err == RP_ERR_NOMEM);
		CHECK(!m);
		return 0;
	}
	shards = json_object_get(m, "shards");
	of = json_integer_value(json_object_get(shards, "of"));
	CHECK(of >= 1 && of <= RP_REPORT_MAX_SHARDS);
	CHECK((json_int_t)(json_array_size(json_object_get(shards, "present")) +
			   json_array_size(
				   json_object_get(shards, "missing"))) == of);
	if (v == RP_REPORT_COMPLETE) {
		CHECK(!json_array_size(json_object_get(shards, "missing")));
		CHECK(!json_array_size(json_object_get(shards, "duplicated")));
		CHECK(!json_array_size(json_object_get(shards, "stopped")));
	}
	CHECK(json_is_true(json_object_get(m, "complete")) ==
	      (v == RP_REPORT_COMPLETE));
	json_decref(m);
	return 0;
}
