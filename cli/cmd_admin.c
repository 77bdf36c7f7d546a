#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "cli.h"
#include "lifecycle.h"
#include "rp_b64.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "rp_json.h"

static const char rekey_help[] =
	"usage: reprotect rekey [--to ID | --alg ALG]\n"
	"\n"
	"Rolls the tenant key in one step: the new key becomes active, the\n"
	"active key becomes archived (it still opens its documents, never\n"
	"protects new ones), and every rights template is re-signed under the\n"
	"new key. --to takes a pending key (from 'key create' or 'key\n"
	"import'); otherwise a new key of ALG is made (default: the active\n"
	"key's algorithm). Documents move to the new key with the bulk\n"
	"engine (not built yet).\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

static const char template_help[] =
	"usage: reprotect template create NAME --rights LIST\n"
	"       reprotect template list [--json]\n"
	"\n"
	"Rights templates, each signed by the active key (rekey re-signs\n"
	"them all). LIST is comma-separated, e.g. view,print. 'protect\n"
	"--template NAME' records the template in the license. list shows\n"
	"each template's signature status.\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

static const char world_help[] =
	"usage: reprotect world backup --shares N --threshold K -o PREFIX\n"
	"       reprotect world show\n"
	"\n"
	"backup splits the store's world key into N admin shares (Shamir\n"
	"over GF(256)), written to PREFIX-1.share ... PREFIX-N.share (0600,\n"
	"one line each). Any K of them rebuild the world with 'reprotect\n"
	"init --from-shares FILE...', after which key backups of this world\n"
	"can be restored; K-1 shares reveal nothing and are refused.\n"
	"show prints the world id.\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

static const char audit_help[] =
	"usage: reprotect audit [--key ID] [--json]\n"
	"       reprotect audit verify\n"
	"\n"
	"Prints the audit log: every life-cycle operation and every command's\n"
	"key usage (counts of unwrap and sign per key, first and last time),\n"
	"with who and where. The log is hash-chained under the world key:\n"
	"'audit verify' finds a changed, removed, inserted or reordered\n"
	"record and names the first bad one (exit code 3).\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

enum {
	OPT_TO = RP_OPT_FIRST_CMD,
	OPT_ALG,
	OPT_RIGHTS,
	OPT_JSON,
	OPT_SHARES,
	OPT_THRESHOLD,
	OPT_KEY,
};

static const struct option admin_opts[] = {
	RP_COMMON_LONGOPTS,
	{ "to", required_argument, NULL, OPT_TO },
	{ "alg", required_argument, NULL, OPT_ALG },
	{ "rights", required_argument, NULL, OPT_RIGHTS },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "shares", required_argument, NULL, OPT_SHARES },
	{ "threshold", required_argument, NULL, OPT_THRESHOLD },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "output", required_argument, NULL, 'o' },
	{ NULL, 0, NULL, 0 },
};

struct admin_args {
	const char *to, *alg, *rights, *out, *key;
	int is_json;
	long shares, threshold;
};

/* parse returns -1 to go on, else an exit code */
static int parse(struct rp_cli *cli, const char *cmd, const char *help,
		 int argc, char **argv, struct admin_args *a)
{
	int c;

	memset(a, 0, sizeof(*a));
	while ((c = getopt_long(argc, argv, "ho:", admin_opts, NULL)) != -1) {
		char *end = NULL;

		switch (c) {
		case 'h':
			fputs(help, stdout);
			return RP_EXIT_OK;
		case OPT_TO:
			a->to = optarg;
			break;
		case OPT_ALG:
			a->alg = optarg;
			break;
		case OPT_RIGHTS:
			a->rights = optarg;
			break;
		case OPT_JSON:
			a->is_json = 1;
			break;
		case OPT_KEY:
			a->key = optarg;
			break;
		case 'o':
			a->out = optarg;
			break;
		case OPT_SHARES:
		case OPT_THRESHOLD:
			*(c == OPT_SHARES ? &a->shares : &a->threshold) =
				strtol(optarg, &end, 10);
			if (!end || *end || end == optarg) {
				return rp_cli_usage(cmd, "'%s' is not a number",
						    optarg);
			}
			break;
		default:
			if (!rp_cli_common_opt(cli, c, optarg)) {
				return rp_cli_usage(cmd, "bad option");
			}
		}
	}
	return -1;
}

int rp_cmd_rekey(struct rp_cli *cli, int argc, char **argv)
{
	struct admin_args a;
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	uint8_t alg = 0;
	long to = -1, prev;
	size_t idx = 0;
	char hex[2 * RP_KEY_ID_LEN + 1], old[2 * RP_KEY_ID_LEN + 1] = "-";
	enum rp_err err;
	int rc = parse(cli, "rekey", rekey_help, argc, argv, &a);

	if (rc >= 0) {
		return rc;
	}
	if (optind != argc) {
		return rp_cli_usage("rekey", "unexpected argument '%s'",
				    argv[optind]);
	}
	if (a.to && a.alg) {
		return rp_cli_usage("rekey", "give --to or --alg, not both");
	}
	if (a.alg && rp_key_alg_parse(&alg, a.alg)) {
		return rp_cli_usage("rekey", "unknown algorithm '%s'", a.alg);
	}
	err = rp_cli_open_store(cli, &st, &s);
	if (!err) {
		err = rp_store_lock(s, &st, 10000);
	}
	if (!err && a.to) {
		to = rp_keyring_find_hex(rp_store_keyring(s), &st, a.to);
		err = to < 0 ? st.err : RP_OK;
	}
	if (!err) {
		prev = rp_keyring_active(rp_store_keyring(s));
		if (prev >= 0) {
			rp_key_id_hex(old, rp_store_keyring(s)->keys[prev].id);
		}
		err = rp_cli_audit_gate(s, &st, "rekey", NULL,
					"archive=%s to=%s", old,
					a.to ? a.to : "new");
	}
	if (!err) {
		err = rp_store_rekey(s, &st, to, alg, &idx);
	}
	if (err) {
		rc = rp_cli_error(&st);
		goto out;
	}
	rp_key_id_hex(hex, rp_store_keyring(s)->keys[idx].id);
	printf("active:   %s (%s)\n", hex,
	       rp_key_alg_name(rp_store_keyring(s)->keys[idx].alg));
	printf("archived: %s\n", old);
	printf("templates re-signed: %zu\n",
	       rp_store_keyring(s)->num_templates);
	rp_cli_audit(s, "rekey", rp_store_keyring(s)->keys[idx].id,
		     "archived=%s templates=%zu", old,
		     rp_store_keyring(s)->num_templates);
	rc = RP_EXIT_OK;
out:
	rp_store_free(s);
	return rc;
}

int rp_cmd_template(struct rp_cli *cli, int argc, char **argv)
{
	struct admin_args a;
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	const char *sub;
	enum rp_err err;
	int rc;

	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 &&
		    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
			fputs(template_help, stdout);
			return RP_EXIT_OK;
		}
		return rp_cli_usage("template", "give create or list");
	}
	sub = argv[1];
	rc = parse(cli, "template", template_help, argc - 1, argv + 1, &a);
	if (rc >= 0) {
		return rc;
	}
	argc--;
	argv++;
	if (!strcmp(sub, "create")) {
		if (optind + 1 != argc || !a.rights) {
			return rp_cli_usage("template",
					    "create takes NAME and --rights");
		}
	} else if (!strcmp(sub, "list")) {
		if (optind != argc) {
			return rp_cli_usage("template",
					    "unexpected argument '%s'",
					    argv[optind]);
		}
	} else {
		return rp_cli_usage("template", "unknown subcommand '%s'", sub);
	}
	err = rp_cli_open_store(cli, &st, &s);
	if (err) {
		rc = rp_cli_error(&st);
		goto out;
	}
	if (!strcmp(sub, "create")) {
		err = rp_store_lock(s, &st, 10000);
		if (!err) {
			err = rp_cli_audit_gate(s, &st, "template.create", NULL,
						"name=%s rights=%s",
						argv[optind], a.rights);
		}
		if (!err) {
			err = rp_store_template_create(s, &st, argv[optind],
						       a.rights);
		}
		if (err) {
			rc = rp_cli_error(&st);
			goto out;
		}
		printf("template '%s' created\n", argv[optind]);
		rp_cli_audit(s, "template.create", NULL, "name=%s rights=%s",
			     argv[optind], a.rights);
		rc = RP_EXIT_OK;
		goto out;
	}
	rc = RP_EXIT_OK;
	if (a.is_json) {
		printf("[");
	} else {
		printf("%-20s  %-30s  %-16s  %-20s  %s\n", "NAME", "RIGHTS",
		       "SIGNER", "SIGNED", "SIGNATURE");
	}
	for (size_t i = 0; i < rp_store_keyring(s)->num_templates; i++) {
		const struct rp_template *t =
			&rp_store_keyring(s)->templates[i];
		struct rp_status vst = { 0 };
		const enum rp_err v = rp_store_template_verify(s, &vst, i);
		char hex[2 * RP_KEY_ID_LEN + 1], when[32];

		rp_key_id_hex(hex, t->signer);
		rp_cli_fmt_time(when, t->signed_at);
		if (v) {
			rc = rp_cli_exit(v);
		}
		if (a.is_json) {
			printf("%s\n  {\"name\": ", i ? "," : "");
			rp_json_cstr(stdout, t->name);
			printf(", \"rights\": ");
			rp_json_cstr(stdout, t->rights);
			printf(", \"signer\": \"%s\", \"signed_at\": \"%s\", "
			       "\"signature\": \"%s\"}",
			       hex, when, v ? rp_err_name(v) : "ok");
		} else {
			printf("%-20s  %-30s  %.16s  %-20s  %s\n", t->name,
			       t->rights, hex, when,
			       v ? rp_status_msg(&vst) : "ok");
		}
	}
	if (a.is_json) {
		printf("%s]\n", rp_store_keyring(s)->num_templates ? "\n" : "");
	}
out:
	rp_store_free(s);
	return rc;
}

int rp_cmd_world(struct rp_cli *cli, int argc, char **argv)
{
	struct admin_args a;
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	char(*lines)[RP_SHARE_LINE_MAX] = NULL;
	char id[33];
	const char *sub;
	enum rp_err err = RP_OK;
	int rc;

	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 &&
		    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
			fputs(world_help, stdout);
			return RP_EXIT_OK;
		}
		return rp_cli_usage("world", "give backup or show");
	}
	sub = argv[1];
	rc = parse(cli, "world", world_help, argc - 1, argv + 1, &a);
	if (rc >= 0) {
		return rc;
	}
	if (optind != argc - 1) {
		return rp_cli_usage("world", "unexpected argument '%s'",
				    argv[optind + 1]);
	}
	if (!strcmp(sub, "backup")) {
		if (!a.out || a.shares < 2 || a.shares > 255 ||
		    a.threshold < 2 || a.threshold > a.shares) {
			return rp_cli_usage(
				"world", "backup needs -o PREFIX, --shares N "
					 "and --threshold K with 2 <= K <= N "
					 "<= 255");
		}
	} else if (strcmp(sub, "show")) {
		return rp_cli_usage("world", "unknown subcommand '%s'", sub);
	}
	err = rp_cli_open_store(cli, &st, &s);
	if (err) {
		rc = rp_cli_error(&st);
		goto out;
	}
	rp_hex_encode(id, rp_store_world_id(s), 16);
	if (!strcmp(sub, "show")) {
		printf("world %s\n", id);
		rc = RP_EXIT_OK;
		goto out;
	}
	lines = OPENSSL_zalloc((size_t)a.shares * RP_SHARE_LINE_MAX);
	if (!lines) {
		rp_status_fail(&st, RP_ERR_NOMEM, "out of memory");
		rc = rp_cli_error(&st);
		goto out;
	}
	err = rp_cli_audit_gate(s, &st, "world.backup", NULL,
				"shares=%ld threshold=%ld", a.shares,
				a.threshold);
	if (!err) {
		err = rp_store_world_split(s, &st, (unsigned)a.shares,
					   (unsigned)a.threshold, lines);
	}
	for (long i = 0; !err && i < a.shares; i++) {
		char path[4200];
		char text[RP_SHARE_LINE_MAX + 1];
		const int m = snprintf(path, sizeof(path), "%s-%ld.share",
				       a.out, i + 1);
		const int n = snprintf(text, sizeof(text), "%s\n", lines[i]);

		if (m < 0 || (size_t)m >= sizeof(path)) {
			err = rp_status_fail(&st, RP_ERR_USAGE,
					     "--out is too long");
		} else if (n < 0 || (size_t)n >= sizeof(text)) {
			err = rp_status_fail(&st, RP_ERR_INTERNAL,
					     "share line too long");
		} else {
			err = rp_file_write_atomic(
				&st, path, (const uint8_t *)text, (size_t)n, 1);
		}
		OPENSSL_cleanse(text, sizeof(text));
		if (!err) {
			printf("wrote %s\n", path);
		}
	}
	if (err) {
		rc = rp_cli_error(&st);
		goto out;
	}
	printf("world %s: any %ld of these %ld shares rebuild it; give each "
	       "to a different admin\n",
	       id, a.threshold, a.shares);
	rp_cli_audit(s, "world.backup", NULL, "shares=%ld threshold=%ld",
		     a.shares, a.threshold);
	rc = RP_EXIT_OK;
out:
	if (lines) {
		OPENSSL_clear_free(lines, (size_t)a.shares * RP_SHARE_LINE_MAX);
	}
	rp_store_free(s);
	return rc;
}

struct audit_print {
	const char *key;
	int is_json;
	size_t n;
};

static void print_record(void *arg, const struct rp_audit_record *r)
{
	struct audit_print *p = arg;

	if (p->key && strncasecmp(r->key, p->key, strlen(p->key))) {
		return;
	}
	if (p->is_json) {
		printf("%s\n  {\"seq\": %llu, \"time\": \"%s\", \"user\": ",
		       p->n ? "," : "", (unsigned long long)r->seq, r->time);
		rp_json_cstr(stdout, r->user);
		printf(", \"host\": ");
		rp_json_cstr(stdout, r->host);
		printf(", \"op\": ");
		rp_json_cstr(stdout, r->op);
		printf(", \"key\": ");
		rp_json_cstr(stdout, r->key);
		printf(", \"detail\": ");
		rp_json_cstr(stdout, r->detail);
		printf("}");
	} else {
		printf("%5llu  %s  %-16.16s  %-16s  %-16.16s  %s\n",
		       (unsigned long long)r->seq, r->time, r->user, r->op,
		       r->key, r->detail);
	}
	p->n++;
}

int rp_cmd_audit(struct rp_cli *cli, int argc, char **argv)
{
	struct admin_args a;
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	struct audit_print p = { 0 };
	uint64_t num = 0;
	int is_verify = 0;
	enum rp_err err;
	int rc = parse(cli, "audit", audit_help, argc, argv, &a);

	if (rc >= 0) {
		return rc;
	}
	if (optind < argc && !strcmp(argv[optind], "verify")) {
		is_verify = 1;
		optind++;
	}
	if (optind != argc) {
		return rp_cli_usage("audit", "unexpected argument '%s'",
				    argv[optind]);
	}
	err = rp_cli_open_store(cli, &st, &s);
	if (err) {
		rc = rp_cli_error(&st);
		goto out;
	}
	p.key = a.key;
	p.is_json = a.is_json;
	if (!is_verify && a.is_json) {
		printf("[");
	} else if (!is_verify) {
		printf("%5s  %-20s  %-16s  %-16s  %-16s  %s\n", "SEQ", "TIME",
		       "USER", "OPERATION", "KEY", "DETAIL");
	}
	err = rp_audit_verify(s, &st, is_verify ? NULL : print_record, &p,
			      &num);
	if (!is_verify && a.is_json) {
		printf("%s]\n", p.n ? "\n" : "");
	}
	if (err) {
		rc = rp_cli_error(&st);
		goto out;
	}
	if (is_verify) {
		printf("audit log intact: %llu records\n",
		       (unsigned long long)num);
	}
	rc = RP_EXIT_OK;
out:
	rp_store_free(s);
	return rc;
}

static const char quota_help[] =
	"usage: reprotect quota [RATE | none]\n"
	"\n"
	"Shows or sets the store's keystore quota: the most private-key\n"
	"operations a second (unwraps and batch signatures) any run or\n"
	"verify of this store asks of its keystore, spread evenly, as\n"
	"--key-ops does (a run's --key-ops may only lower it; a shard of N\n"
	"takes 1/N of it). 'none' removes it. RATE is a whole number,\n"
	"1 to 1000000. Kept in the keyring (sealed audit record\n"
	"'quota').\n";

int rp_cmd_quota(struct rp_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		RP_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	uint64_t rate = 0;
	enum rp_err err;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(quota_help, stdout);
			return RP_EXIT_OK;
		}
		if (!rp_cli_common_opt(cli, c, optarg)) {
			return rp_cli_usage("quota", "bad option");
		}
	}
	if (argc - optind > 1) {
		return rp_cli_usage("quota", "give one RATE, or none");
	}
	if (optind < argc && strcmp(argv[optind], "none") &&
	    (!rp_cli_parse_u64(argv[optind], &rate) || !rate ||
	     rate > RP_KEY_OPS_MAX)) {
		return rp_cli_usage("quota",
				    "RATE: a whole number of operations a "
				    "second, 1 to %d, or none",
				    RP_KEY_OPS_MAX);
	}
	err = rp_cli_open_store(cli, &st, &s);
	if (!err && optind == argc) {
		const uint32_t q = rp_store_keyring(s)->key_ops;

		if (q) {
			printf("quota: %u private-key operations a second\n",
			       q);
		} else {
			printf("quota: none\n");
		}
		rp_store_free(s);
		return RP_EXIT_OK;
	}
	if (!err) {
		err = rp_store_lock(s, &st, 10000);
	}
	if (!err) {
		err = rp_cli_audit_gate(s, &st, "quota", NULL,
					"per_second=%llu",
					(unsigned long long)rate);
	}
	if (!err) {
		err = rp_store_set_quota(s, &st, (uint32_t)rate);
	}
	if (err) {
		rc = rp_cli_error(&st);
		goto out;
	}
	if (rate) {
		printf("quota: %llu private-key operations a second\n",
		       (unsigned long long)rate);
	} else {
		printf("quota: none\n");
	}
	rp_cli_audit(s, "quota", NULL, "per_second=%llu",
		     (unsigned long long)rate);
	rc = RP_EXIT_OK;
out:
	rp_store_free(s);
	return rc;
}
