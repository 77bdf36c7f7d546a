/*
 * cmd_recover.c: 'reprotect recover', and how a recovery is shown (also
 * by run and verify, which recover first).
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "run.h"

static const char help[] =
	"usage: reprotect recover\n"
	"\n"
	"Settles what a killed run (kill -9, a crash, a power cut) left in\n"
	"the store's write-ahead journals (STORE/wal): each document whose\n"
	"header a run was overwriting in place is found by its path and\n"
	"proved to be the one (device, inode, size, nonce, and every header\n"
	"byte either the old or the new header's); a torn header gets its\n"
	"old header back and is synced. A document found changed or gone\n"
	"is left alone and named. A journal whose documents are all settled\n"
	"is removed; a journal a live run holds is not touched. run and\n"
	"verify do this first on their own; recover needs no passphrase.\n"
	"\n"
	"Exit 0 when every journal is settled; 6 when a document could not\n"
	"be (busy under another run's lock, or an I/O error): its journal is\n"
	"kept, run recover again.\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

void rp_cli_recovery_print(const struct rp_wal_recovery *r)
{
	if (!r->journals) {
		return;
	}
	printf("recovered %llu journal(s) of a killed run: %llu documents, "
	       "%llu torn header(s) restored, %llu found old, %llu found new, "
	       "%llu left (changed or gone), %llu busy, %llu failed\n",
	       (unsigned long long)r->journals,
	       (unsigned long long)r->records,
	       (unsigned long long)r->restored, (unsigned long long)r->as_old,
	       (unsigned long long)r->as_new, (unsigned long long)r->left,
	       (unsigned long long)r->busy, (unsigned long long)r->failed);
}

void rp_cli_recovery_json(FILE *f, const struct rp_wal_recovery *r)
{
	fprintf(f,
		"  \"recovery\": {\"journals\": %llu, \"documents\": %llu, "
		"\"restored\": %llu, \"as_old\": %llu, \"as_new\": %llu, "
		"\"left\": %llu, \"busy\": %llu, \"failed\": %llu},\n",
		(unsigned long long)r->journals,
		(unsigned long long)r->records,
		(unsigned long long)r->restored, (unsigned long long)r->as_old,
		(unsigned long long)r->as_new, (unsigned long long)r->left,
		(unsigned long long)r->busy, (unsigned long long)r->failed);
}

static void print_line(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "reprotect: %s\n", line);
}

int rp_cmd_recover(struct rp_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		RP_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct rp_status st = { 0 };
	struct rp_wal_recovery rec;
	char dir[4096];
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return RP_EXIT_OK;
		}
		if (!rp_cli_common_opt(cli, c, optarg)) {
			return rp_cli_usage("recover", "bad option");
		}
	}
	if (optind != argc) {
		return rp_cli_usage("recover", "no arguments");
	}
	if (rp_cli_store_dir(cli, &st, dir, sizeof(dir))) {
		return rp_cli_error(&st);
	}
	if (rp_run_recover(dir, &st, &rec, print_line, NULL)) {
		rp_cli_recovery_print(&rec);
		return rp_cli_error(&st);
	}
	if (!rec.journals) {
		printf("nothing to recover\n");
	}
	rp_cli_recovery_print(&rec);
	return RP_EXIT_OK;
}
