/*
 * cmd_report.c: `reprotect report merge`, the reports of one run's shards
 * put together (formats/run_report.c does the merge). No store is opened:
 * the node that collects the reports needs no key and no passphrase.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afile.h"
#include "cli.h"
#include "rp_buf.h"
#include "run_report.h"

static const char usage[] =
	"usage: reprotect report merge SHARD-REPORT... [--json] "
	"[--report FILE]\n"
	"\n"
	"Puts together the JSON reports (run --report FILE) of one run's\n"
	"shards (--shard I/N): totals per outcome and per key, bytes, the\n"
	"wall time from the first shard's start to the last one's end and\n"
	"the rates over it, the slowest shard, and every skipped or failed\n"
	"document with its shard. Reports of different runs (another store,\n"
	"mode, roots, --from, source or target keys, or number of shards)\n"
	"are refused, naming what differs. Give each shard's last attempt:\n"
	"a shard given twice counts once and makes the merge incomplete.\n"
	"\n"
	"  --json         print the merged report as JSON\n"
	"  --report FILE  write the merged report (JSON) to FILE\n"
	"\n"
	"Exit 0 only when every shard 0..N-1 is there, finished, and nothing\n"
	"failed; 2 when a shard is missing or given twice (they are named),\n"
	"or the reports are of different runs; 8 when a shard was stopped\n"
	"(run it again); 1 or 9 as a shard's run said; 3 when a report is\n"
	"not a run report.\n";

static int verdict_exit(enum rp_report_verdict v)
{
	switch (v) {
	case RP_REPORT_COMPLETE:
		return RP_EXIT_OK;
	case RP_REPORT_PARTIAL:
		return RP_EXIT_PARTIAL;
	case RP_REPORT_RETIRING:
		return RP_EXIT_RETIRING;
	case RP_REPORT_STOPPED:
		return RP_EXIT_STOPPED;
	case RP_REPORT_INCOMPLETE:
	default:
		return RP_EXIT_USAGE;
	}
}

/* list_line prints "reprotect: <what>: 0, 3, 7" for a non-empty list */
static void list_line(const json_t *shards, const char *field, const char *what)
{
	const json_t *a = json_object_get(shards, field);
	const json_t *v;
	size_t i;

	if (!json_array_size(a)) {
		return;
	}
	fprintf(stderr, "reprotect: %s:", what);
	json_array_foreach(a, i, v)
	{
		if (i == 16) {
			fprintf(stderr, " ... (%zu in all)",
				json_array_size(a));
			break;
		}
		fprintf(stderr, "%s %lld", i ? "," : "",
			(long long)json_integer_value(v));
	}
	fputc('\n', stderr);
}

static void print_merged(const json_t *m)
{
	const json_t *shards = json_object_get(m, "shards");
	const json_t *run = json_object_get(m, "run");
	const json_t *slow = json_object_get(m, "slowest_shard");
	const json_t *ops = json_object_get(m, "key_ops");
	const char *name;
	const json_t *v;

	printf("%zu of %lld shards of a %s run to key %.16s: %s\n",
	       json_array_size(json_object_get(shards, "present")),
	       (long long)json_integer_value(json_object_get(shards, "of")),
	       json_string_value(json_object_get(run, "mode")),
	       json_string_value(json_object_get(run, "target_key")),
	       json_is_true(json_object_get(m, "complete")) ? "complete"
							    : "NOT complete");
	json_object_foreach((json_t *)json_object_get(m, "outcomes"), name, v)
	{
		const json_int_t n =
			json_integer_value(json_object_get(v, "documents"));

		if (n) {
			printf("  %-22s %lld documents, %.1f MB\n", name,
			       (long long)n,
			       (double)json_integer_value(
				       json_object_get(v, "bytes")) /
				       1e6);
		}
	}
	printf("wall time %.1f s (first start to last end): %.1f moved/s, "
	       "%.2f MB/s; key operations %lld, %.1f/s\n",
	       json_real_value(json_object_get(m, "seconds")),
	       json_real_value(json_object_get(m, "moved_per_second")),
	       json_real_value(json_object_get(m, "moved_mb_per_second")),
	       (long long)json_integer_value(json_object_get(ops, "count")),
	       json_real_value(json_object_get(ops, "per_second")));
	printf("slowest: shard %lld on %s, %.1f s (%s)\n",
	       (long long)json_integer_value(json_object_get(slow, "index")),
	       json_string_value(json_object_get(slow, "host")),
	       json_real_value(json_object_get(slow, "seconds")),
	       json_string_value(json_object_get(slow, "report")));
	printf("skipped or failed documents listed: %zu\n",
	       json_array_size(json_object_get(m, "documents")));
}

/* save: the merged report to `path`, 0600, whole or not at all */
static int save(const char *path, const char *text)
{
	struct rp_status st = { 0 };
	struct rp_afile af;

	if (!rp_afile_open(&af, &st, path, 0) &&
	    !rp_afile_write(&af, &st, (const uint8_t *)text, strlen(text))) {
		(void)!rp_afile_commit(&af, &st);
	}
	rp_afile_fini(&af);
	if (st.err) {
		fprintf(stderr, "reprotect: the merged report: %s\n",
			rp_status_msg(&st));
		return 1;
	}
	return 0;
}

static int merge(char **files, size_t num, const char *report, int is_json)
{
	struct rp_status st = { 0 };
	struct rp_buf *bufs = calloc(num, sizeof(*bufs));
	struct rp_report_in *in = calloc(num, sizeof(*in));
	enum rp_report_verdict verdict;
	json_t *m = NULL;
	char *text = NULL;
	int rc = RP_EXIT_SYSTEM;

	if (!bufs || !in) {
		fprintf(stderr, "reprotect: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < num; i++) {
		if (rp_cli_read_file(&bufs[i], &st, files[i], RP_REPORT_MAX)) {
			rc = rp_cli_error(&st);
			goto out;
		}
		in[i] = (struct rp_report_in){ .name = files[i],
					       .buf = (const char *)bufs[i].p,
					       .len = bufs[i].len };
	}
	if (rp_report_merge(&m, &verdict, &st, in, num)) {
		rc = rp_cli_error(&st);
		goto out;
	}
	rc = verdict_exit(verdict);
	if (json_object_set_new(m, "exit_code", json_integer(rc))) {
		rc = RP_EXIT_SYSTEM;
		goto out;
	}
	text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text) {
		fprintf(stderr, "reprotect: out of memory\n");
		rc = RP_EXIT_SYSTEM;
		goto out;
	}
	if (is_json) {
		printf("%s\n", text);
	} else {
		print_merged(m);
	}
	if (report && save(report, text)) {
		rc = RP_EXIT_SYSTEM;
		goto out;
	}
	{
		const json_t *shards = json_object_get(m, "shards");

		list_line(shards, "missing", "shards missing");
		list_line(shards, "duplicated",
			  "shards given twice (the first given counted; give "
			  "each shard's last report)");
		list_line(shards, "stopped",
			  "shards stopped (run them again, then merge their "
			  "new reports)");
		list_line(shards, "not_clean",
			  "shards whose run did not exit 0 (their failed "
			  "documents are listed)");
	}
out:
	free(text);
	json_decref(m);
	for (size_t i = 0; bufs && i < num; i++) {
		rp_buf_fini(&bufs[i]);
	}
	free(bufs);
	free(in);
	return rc;
}

int rp_cmd_report(struct rp_cli *cli, int argc, char **argv)
{
	enum { OPT_JSON = RP_OPT_FIRST_CMD, OPT_REPORT };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "report", required_argument, NULL, OPT_REPORT },
		RP_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	const char *report = NULL;
	int is_json = 0, c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? RP_EXIT_USAGE : RP_EXIT_OK;
	}
	if (strcmp(argv[1], "merge")) {
		return rp_cli_usage("report", "unknown subcommand '%s'",
				    argv[1]);
	}
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			is_json = 1;
			break;
		case OPT_REPORT:
			report = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return RP_EXIT_OK;
		default:
			if (!rp_cli_common_opt(cli, c, optarg)) {
				return rp_cli_usage("report merge",
						    "bad option");
			}
		}
	}
	if (optind == argc) {
		return rp_cli_usage("report merge",
				    "give the shard reports to merge");
	}
	return merge(argv + optind, (size_t)(argc - optind), report, is_json);
}
