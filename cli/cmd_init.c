#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "lifecycle.h"
#include "rp_buf.h"
#include "rp_file.h"

static const char help[] =
	"usage: reprotect init [--backend soft|pkcs11 [--pkcs11-module PATH]\n"
	"                      [--pkcs11-token LABEL]] [--from-shares "
	"FILE...]\n"
	"\n"
	"Creates a store: a random world key sealed under the passphrase\n"
	"(scrypt), an empty keyring MACed under the world key, and a folder\n"
	"for the soft keystore's sealed keys. Files are 0600, the folder "
	"0700.\n"
	"Refuses a folder that already holds a store.\n"
	"\n"
	"  --backend B          where new keys live: soft (default) or pkcs11\n"
	"  --pkcs11-module PATH the PKCS#11 module (default\n"
	"                       /usr/lib/softhsm/libsofthsm2.so)\n"
	"  --pkcs11-token LABEL the token, by label (default: reprotect)\n"
	"  --pin-generation FILE  keep a copy of the keyring's generation in\n"
	"                       FILE, outside the store (another disk, a\n"
	"                       mount the store's backups do not hold): a\n"
	"                       store folder copied back whole from an older\n"
	"                       copy then does not open. Written at every\n"
	"                       key change; the store does not open without\n"
	"                       it\n"
	"  --min-retire-wait DAYS  the shortest waiting period a 'key\n"
	"                       retire' may have (default 7; no command\n"
	"                       can change it later)\n"
	"  --from-shares FILE.. rebuild the security world of an earlier "
	"store\n"
	"                       from K of its admin shares ('world backup'),\n"
	"                       so that its key backups can be restored\n"
	"\n"
	"The PKCS#11 PIN comes from REPROTECT_PKCS11_PIN or\n"
	"--pkcs11-pin-file; init logs in once to check it.\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

enum {
	OPT_BACKEND = RP_OPT_FIRST_CMD,
	OPT_MODULE,
	OPT_TOKEN,
	OPT_SHARES,
	OPT_MIN_WAIT,
	OPT_PIN,
};

int rp_cmd_init(struct rp_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		RP_COMMON_LONGOPTS,
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "pkcs11-module", required_argument, NULL, OPT_MODULE },
		{ "pkcs11-token", required_argument, NULL, OPT_TOKEN },
		{ "from-shares", no_argument, NULL, OPT_SHARES },
		{ "min-retire-wait", required_argument, NULL, OPT_MIN_WAIT },
		{ "pin-generation", required_argument, NULL, OPT_PIN },
		{ NULL, 0, NULL, 0 },
	};
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	struct rp_store_conf conf;
	const char *backend = "soft";
	const char *module = "/usr/lib/softhsm/libsofthsm2.so";
	const char *token = "reprotect";
	int is_from_shares = 0;
	char dir[4096];
	char *pass = NULL, *pin = NULL;
	size_t pass_len = 0, pin_len = 0;
	uint8_t world_key[32], world_id[16];
	const char **lines = NULL;
	struct rp_buf *files = NULL;
	size_t num_files = 0;
	enum rp_err err = RP_OK;
	int c, rc = RP_EXIT_OK;
	int n_module, n_token;
	uint64_t min_wait = 0;
	const char *pin_arg = NULL;
	char pin_path[RP_PIN_PATH_MAX + 1] = "";

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return RP_EXIT_OK;
		case OPT_BACKEND:
			backend = optarg;
			break;
		case OPT_MODULE:
			module = optarg;
			break;
		case OPT_TOKEN:
			token = optarg;
			break;
		case OPT_SHARES:
			is_from_shares = 1;
			break;
		case OPT_PIN:
			pin_arg = optarg;
			break;
		case OPT_MIN_WAIT:
			if (!rp_cli_parse_u64(optarg, &min_wait) || !min_wait ||
			    min_wait > RP_RETIRE_MAX_DAYS) {
				return rp_cli_usage("init",
						    "--min-retire-wait: 1 to "
						    "%d days",
						    RP_RETIRE_MAX_DAYS);
			}
			break;
		default:
			if (!rp_cli_common_opt(cli, c, optarg)) {
				return rp_cli_usage("init", "bad option");
			}
		}
	}
	memset(&conf, 0, sizeof(conf));
	if (!strcmp(backend, "soft")) {
		conf.backend = RP_BACKEND_SOFT;
	} else if (!strcmp(backend, "pkcs11")) {
		conf.backend = RP_BACKEND_PKCS11;
	} else {
		return rp_cli_usage("init",
				    "unknown backend '%s': soft or "
				    "pkcs11",
				    backend);
	}
	n_module = snprintf(conf.pkcs11_module, sizeof(conf.pkcs11_module),
			    "%s", module);
	n_token = snprintf(conf.pkcs11_token, sizeof(conf.pkcs11_token), "%s",
			   token);
	if (n_module < 0 || (size_t)n_module >= sizeof(conf.pkcs11_module) ||
	    n_token < 0 || (size_t)n_token >= sizeof(conf.pkcs11_token)) {
		return rp_cli_usage("init", "module path or token label too "
					    "long");
	}
	if (pin_arg) {
		/* absolute, its folder resolved; the file itself is made */
		char *dup = strdup(pin_arg);
		char *slash = dup ? strrchr(dup, '/') : NULL;
		char *folder = NULL;
		const char *name = pin_arg;

		if (dup && slash) {
			*slash = '\0';
			name = slash + 1;
			folder = realpath(slash == dup ? "/" : dup, NULL);
		} else if (dup) {
			folder = realpath(".", NULL);
		}
		if (!folder || !*name ||
		    snprintf(pin_path, sizeof(pin_path), "%s/%s",
			     strcmp(folder, "/") ? folder : "",
			     name) >= (int)sizeof(pin_path)) {
			free(dup);
			free(folder);
			return rp_cli_usage("init",
					    "--pin-generation: a file in an "
					    "existing folder");
		}
		free(dup);
		free(folder);
	}
	if (is_from_shares && optind == argc) {
		return rp_cli_usage("init", "--from-shares needs share files");
	}
	if (!is_from_shares && optind != argc) {
		return rp_cli_usage("init", "unexpected argument '%s'",
				    argv[optind]);
	}
	if (is_from_shares) {
		num_files = (size_t)(argc - optind);
		files = OPENSSL_zalloc(num_files * sizeof(*files));
		lines = OPENSSL_zalloc(num_files * sizeof(*lines));
		if (!files || !lines) {
			err = rp_status_fail(&st, RP_ERR_NOMEM,
					     "out of memory");
		}
		for (size_t i = 0; !err && i < num_files; i++) {
			err = rp_cli_read_file(&files[i], &st, argv[optind + i],
					   1024);
			if (!err && rp_buf_add_u8(&files[i], 0)) {
				err = RP_ERR_NOMEM;
			}
			lines[i] = (const char *)files[i].p;
		}
		if (!err) {
			err = rp_world_from_shares(&st, lines, num_files,
						   world_key, world_id);
		}
		if (err) {
			goto out;
		}
	}
	err = rp_cli_store_dir(cli, &st, dir, sizeof(dir));
	if (!err) {
		err = rp_cli_passphrase(cli, &st, 1, &pass, &pass_len);
	}
	if (!err) {
		err = rp_store_create_ex(&s, &st, dir, (const uint8_t *)pass,
					 pass_len, &conf,
					 is_from_shares ? world_key : NULL,
					 is_from_shares ? world_id : NULL);
	}
	if (!err && pin_path[0]) {
		char *real = realpath(dir, NULL);
		const size_t n = real ? strlen(real) : 0;

		if (real && !strncmp(pin_path, real, n) && pin_path[n] == '/') {
			err = rp_status_fail(&st, RP_ERR_USAGE,
					     "--pin-generation: the file must "
					     "be outside the store (a copy of "
					     "the folder would hold it too); "
					     "the store was created without "
					     "it");
		} else {
			err = rp_store_set_pin_path(s, &st, pin_path);
		}
		free(real);
	}
	if (!err && min_wait) {
		err = rp_store_set_min_retire_days(s, &st, (uint32_t)min_wait);
	}
	if (!err && conf.backend == RP_BACKEND_PKCS11) {
		err = rp_cli_pin(cli, &st, &pin, &pin_len);
		if (!err && pin) {
			err = rp_store_set_pkcs11_pin(s, &st, pin, pin_len);
		}
		if (!err) {
			err = rp_store_open_backend(s, &st);
		}
		if (err) {
			rp_status_prefix(&st,
					 "the store was created, but its token "
					 "does not open");
		}
	}
out:
	OPENSSL_clear_free(pass, 1024);
	OPENSSL_clear_free(pin, 1024);
	OPENSSL_cleanse(world_key, sizeof(world_key));
	for (size_t i = 0; files && i < num_files; i++) {
		rp_buf_fini(&files[i]);
	}
	OPENSSL_free(files);
	OPENSSL_free(lines);
	if (err) {
		rc = rp_cli_error(&st);
	} else {
		printf("created store in '%s' (%s%s)\n", dir, backend,
		       is_from_shares ? ", world rebuilt from shares" : "");
		rp_cli_audit(s, "store.init", NULL, "backend=%s shares=%d",
			     backend, is_from_shares);
	}
	rp_store_free(s);
	return rc;
}
