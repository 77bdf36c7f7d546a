#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "rp_json.h"

static const char help[] =
	"usage: reprotect key create [--alg ALG] [--activate] [--exportable]\n"
	"       reprotect key import FILE [--activate] [--exportable]\n"
	"       reprotect key list [--json]\n"
	"\n"
	"create  generates a key in the soft keystore, state pending (or\n"
	"        active with --activate, which archives the previously\n"
	"        active key). ALG: rsa2048 (default), rsa3072, rsa4096,\n"
	"        x25519 (X25519 wrapping plus an Ed25519 signing key\n"
	"        derived from it).\n"
	"import  brings your own key: a PEM RSA private key (PKCS#1 or\n"
	"        PKCS#8, unencrypted; 2048, 3072 or 4096 bits) or an age\n"
	"        X25519 identity file (AGE-SECRET-KEY-1...).\n"
	"list    every key: id, algorithm, state, dates, backend, flags.\n"
	"\n"
	"--exportable marks the key as exportable (keys are not, by "
	"default).\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

enum { OPT_ALG = RP_OPT_FIRST_CMD, OPT_ACTIVATE, OPT_EXPORTABLE, OPT_JSON };

static void fmt_time(char out[32], uint64_t t)
{
	const time_t tt = (time_t)t;
	struct tm tm;

	if (!t || !gmtime_r(&tt, &tm)) {
		snprintf(out, 32, "-");
		return;
	}
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_created(const struct rp_store *s, size_t idx)
{
	const struct rp_key_info *k = &rp_store_keyring(s)->keys[idx];
	char hex[2 * RP_KEY_ID_LEN + 1];

	rp_key_id_hex(hex, k->id);
	printf("%s %s %s\n", hex, rp_key_alg_name(k->alg),
	       rp_key_state_name(k->state));
}

static void list_json(const struct rp_keyring *kr)
{
	printf("[");
	for (size_t i = 0; i < kr->num_keys; i++) {
		const struct rp_key_info *k = &kr->keys[i];
		char hex[2 * RP_KEY_ID_LEN + 1];
		char t[4][32];

		rp_key_id_hex(hex, k->id);
		fmt_time(t[0], k->created_at);
		fmt_time(t[1], k->activated_at);
		fmt_time(t[2], k->archived_at);
		fmt_time(t[3], k->revoked_at);
		printf("%s\n  {\"id\": \"%s\", \"alg\": \"%s\", \"state\": "
		       "\"%s\", \"backend\": \"%s\", \"exportable\": %s, "
		       "\"imported\": %s, \"created\": \"%s\", "
		       "\"activated\": \"%s\", \"archived\": \"%s\", "
		       "\"revoked\": \"%s\"}",
		       i ? "," : "", hex, rp_key_alg_name(k->alg),
		       rp_key_state_name(k->state),
		       k->backend == RP_BACKEND_SOFT ? "soft" : "pkcs11",
		       k->flags & RP_KEY_EXPORTABLE ? "true" : "false",
		       k->flags & RP_KEY_IMPORTED ? "true" : "false", t[0],
		       t[1], t[2], t[3]);
	}
	printf("%s]\n", kr->num_keys ? "\n" : "");
}

static void list_table(const struct rp_keyring *kr)
{
	printf("%-16s  %-8s  %-9s  %-20s  %-20s  %-7s  %s\n", "ID", "ALG",
	       "STATE", "CREATED", "ACTIVATED", "BACKEND", "FLAGS");
	for (size_t i = 0; i < kr->num_keys; i++) {
		const struct rp_key_info *k = &kr->keys[i];
		char hex[2 * RP_KEY_ID_LEN + 1];
		char t0[32], t1[32];

		rp_key_id_hex(hex, k->id);
		fmt_time(t0, k->created_at);
		fmt_time(t1, k->activated_at);
		printf("%.16s  %-8s  %-9s  %-20s  %-20s  %-7s  %s%s\n", hex,
		       rp_key_alg_name(k->alg), rp_key_state_name(k->state), t0,
		       t1, k->backend == RP_BACKEND_SOFT ? "soft" : "pkcs11",
		       k->flags & RP_KEY_EXPORTABLE ? "exportable" : "-",
		       k->flags & RP_KEY_IMPORTED ? ",imported" : "");
	}
}

int rp_cmd_key(struct rp_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		RP_COMMON_LONGOPTS,
		{ "alg", required_argument, NULL, OPT_ALG },
		{ "activate", no_argument, NULL, OPT_ACTIVATE },
		{ "exportable", no_argument, NULL, OPT_EXPORTABLE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	struct rp_buf data = { 0 };
	const char *sub;
	const char *alg_name = "rsa2048";
	uint8_t alg = 0;
	int is_activate = 0, is_json = 0;
	uint8_t flags = 0;
	size_t idx = 0;
	enum rp_err err = RP_OK;
	int c, rc = RP_EXIT_OK;

	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 &&
		    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
			fputs(help, stdout);
			return RP_EXIT_OK;
		}
		return rp_cli_usage("key", "give a subcommand: create, "
					   "import or list");
	}
	sub = argv[1];
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return RP_EXIT_OK;
		case OPT_ALG:
			alg_name = optarg;
			break;
		case OPT_ACTIVATE:
			is_activate = 1;
			break;
		case OPT_EXPORTABLE:
			flags |= RP_KEY_EXPORTABLE;
			break;
		case OPT_JSON:
			is_json = 1;
			break;
		default:
			if (!rp_cli_common_opt(cli, c, optarg)) {
				return rp_cli_usage("key", "bad option");
			}
		}
	}
	if (!strcmp(sub, "create")) {
		if (optind != argc) {
			return rp_cli_usage("key", "unexpected argument '%s'",
					    argv[optind]);
		}
		if (rp_key_alg_parse(&alg, alg_name)) {
			return rp_cli_usage("key",
					    "unknown algorithm '%s': use "
					    "rsa2048, rsa3072, rsa4096 or "
					    "x25519",
					    alg_name);
		}
	} else if (!strcmp(sub, "import")) {
		if (optind + 1 != argc) {
			return rp_cli_usage("key", "import takes one FILE");
		}
	} else if (!strcmp(sub, "list")) {
		if (optind != argc) {
			return rp_cli_usage("key", "unexpected argument '%s'",
					    argv[optind]);
		}
	} else {
		return rp_cli_usage("key", "unknown subcommand '%s'", sub);
	}

	err = rp_cli_open_store(cli, &st, &s);
	if (err) {
		goto out;
	}
	if (!strcmp(sub, "list")) {
		if (is_json) {
			list_json(rp_store_keyring(s));
		} else {
			list_table(rp_store_keyring(s));
		}
		goto out;
	}
	err = rp_store_lock(s, &st, 10000);
	if (err) {
		goto out;
	}
	if (!strcmp(sub, "create")) {
		err = rp_store_key_create(s, &st, alg, flags, is_activate,
					  &idx);
	} else {
		err = rp_file_read(&data, &st, argv[optind], 64 * 1024);
		if (!err) {
			err = rp_store_key_import(s, &st, data.p, data.len,
						  flags, is_activate, &idx);
		}
		if (err) {
			rp_status_prefix(&st, "cannot import '%s'",
					 argv[optind]);
		}
	}
	if (!err) {
		print_created(s, idx);
	}
out:
	if (err) {
		rc = rp_cli_error(&st);
	}
	rp_buf_fini(&data);
	rp_store_free(s);
	return rc;
}
