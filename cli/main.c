#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "ks_pkcs11.h"
#include "rp_ossl.h"
#include "rp_testhook.h"

static const char usage[] =
	"usage: reprotect [--store DIR] [--passphrase-file FILE] COMMAND "
	"[ARGS]\n"
	"\n"
	"Keeps protected documents (age v1 files with a signed license) safe\n"
	"through the life of the tenant key.\n"
	"\n"
	"Commands:\n"
	"  init                      create a store (world key + keyring)\n"
	"  key create|import|list|show|backup|restore|revoke|destroy|export\n"
	"                            manage tenant keys\n"
	"  rekey                     roll the tenant key (new active, old\n"
	"                            archived, templates re-signed)\n"
	"  template create|list      rights templates, signed by the active "
	"key\n"
	"  world backup|show         the security world; admin shares\n"
	"  audit [verify]            the hash-chained audit log\n"
	"  run PATH... --in-place    move documents from archived keys to the\n"
	"                            active key (the bulk engine)\n"
	"  verify PATH...            check that every document opens\n"
	"  recover                   settle what a killed run left (torn\n"
	"                            headers back to their old one)\n"
	"  census PATH...            which documents are under which key: a\n"
	"                            signed statement (and verify, merge)\n"
	"  report merge REPORT...    put the reports of a run's shards\n"
	"                            together\n"
	"  quota [RATE|none]         the store's keystore quota (private-key\n"
	"                            operations a second, for every run)\n"
	"  protect IN...             protect files under the active key\n"
	"  unprotect IN              check and open a protected document\n"
	"  inspect FILE              show a document's key, license and "
	"checks\n"
	"  version                   print the version\n"
	"\n"
	"Run 'reprotect COMMAND --help' for a command's options.\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

struct command {
	const char *name;
	int (*fn)(struct rp_cli *cli, int argc, char **argv);
};

static const struct command commands[] = {
	{ "init", rp_cmd_init },	 { "key", rp_cmd_key },
	{ "protect", rp_cmd_protect },	 { "unprotect", rp_cmd_unprotect },
	{ "inspect", rp_cmd_inspect },	 { "rekey", rp_cmd_rekey },
	{ "template", rp_cmd_template }, { "world", rp_cmd_world },
	{ "audit", rp_cmd_audit },	 { "run", rp_cmd_run },
	{ "verify", rp_cmd_run },	 { "recover", rp_cmd_recover },
	{ "census", rp_cmd_census },	 { "report", rp_cmd_report },
	{ "quota", rp_cmd_quota },
};

/*
 * stdout_done flushes stdout and turns a write error (a full disk, a
 * closed pipe) into RP_EXIT_SYSTEM, so `reprotect ... >file` cannot
 * report success for output it lost. Returns `rc` otherwise.
 */
static int stdout_done(int rc)
{
	const int err = fflush(stdout) ? errno : ferror(stdout) ? EIO : 0;

	if (!err) {
		return rc;
	}
	fprintf(stderr, "reprotect: cannot write the standard output: %s\n",
		strerror(err));
	return rc == RP_EXIT_OK ? RP_EXIT_SYSTEM : rc;
}

int main(int argc, char **argv)
{
	struct rp_cli cli = { .prog = "reprotect" };
	struct rp_status init_st = { 0 };
	int i = 1;

	/* before anything allocates through libcrypto */
	if (rp_ossl_init(&init_st)) {
		return rp_cli_error(&init_st);
	}
	/* global options before the command */
	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			return stdout_done(RP_EXIT_OK);
		}
		if (!strcmp(argv[i], "--version")) {
			printf("reprotect %s\n", RP_VERSION);
			return stdout_done(RP_EXIT_OK);
		}
		if (i + 1 < argc && !strcmp(argv[i], "--store")) {
			cli.store_dir = argv[i + 1];
		} else if (i + 1 < argc &&
			   !strcmp(argv[i], "--passphrase-file")) {
			cli.pass_file = argv[i + 1];
		} else if (i + 1 < argc &&
			   !strcmp(argv[i], "--pkcs11-pin-file")) {
			cli.pin_file = argv[i + 1];
		} else {
			fprintf(stderr,
				"reprotect: unknown option '%s'\n"
				"Try 'reprotect --help'.\n",
				argv[i]);
			return RP_EXIT_USAGE;
		}
		i += 2;
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return RP_EXIT_USAGE;
	}
	if (!strcmp(argv[i], "version")) {
		printf("reprotect %s\n", RP_VERSION);
		return stdout_done(RP_EXIT_OK);
	}
	if (!strcmp(argv[i], "help")) {
		fputs(usage, stdout);
		return stdout_done(RP_EXIT_OK);
	}
	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		if (!strcmp(argv[i], commands[c].name)) {
			const int rc = stdout_done(
				commands[c].fn(&cli, argc - i, argv + i));
			struct rp_status st = { 0 };

			/* PKCS#11 is finalised once, after every store closed */
			if (rp_pkcs11_finalize(&st)) {
				fprintf(stderr, "reprotect: warning: %s\n",
					rp_status_msg(&st));
			}
			/* what the command's deep calls left on the stack */
			rp_stack_wipe();
			/* tests look at the process's memory here (it_secrets) */
			rp_test_pause_point("cli:exit");
			return rc;
		}
	}
	fprintf(stderr,
		"reprotect: unknown command '%s'\nTry 'reprotect --help'.\n",
		argv[i]);
	return RP_EXIT_USAGE;
}
