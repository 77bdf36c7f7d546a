#include <stdio.h>

#include <openssl/crypto.h>

#include "cli.h"

static const char help[] =
	"usage: reprotect init [--store DIR] [--passphrase-file FILE]\n"
	"\n"
	"Creates a store: a random world key sealed under the passphrase\n"
	"(scrypt), an empty keyring MACed under the world key, and a folder\n"
	"for the soft keystore's sealed keys. Files are 0600, the folder "
	"0700.\n"
	"Refuses a folder that already holds a store.\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

int rp_cmd_init(struct rp_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { RP_COMMON_LONGOPTS,
					      { NULL, 0, NULL, 0 } };
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	char dir[4096];
	char *pass = NULL;
	size_t pass_len = 0;
	enum rp_err err;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return RP_EXIT_OK;
		}
		if (!rp_cli_common_opt(cli, c, optarg)) {
			return rp_cli_usage("init", "bad option");
		}
	}
	if (optind != argc) {
		return rp_cli_usage("init", "unexpected argument '%s'",
				    argv[optind]);
	}
	err = rp_cli_store_dir(cli, &st, dir, sizeof(dir));
	if (!err) {
		err = rp_cli_passphrase(cli, &st, 1, &pass, &pass_len);
	}
	if (!err) {
		err = rp_store_create(&s, &st, dir, (const uint8_t *)pass,
				      pass_len);
	}
	OPENSSL_clear_free(pass, 1024);
	if (err) {
		return rp_cli_error(&st);
	}
	printf("created store in '%s'\n", dir);
	rp_store_free(s);
	return RP_EXIT_OK;
}
