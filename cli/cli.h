#ifndef RP_CLI_CLI_H
#define RP_CLI_CLI_H

#include <stdio.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "rp_err.h"
#include "run.h"
#include "store.h"

/*
 * Exit codes. Scripts rely on them: keep them stable, only append.
 */
enum rp_exit {
	RP_EXIT_OK = 0,
	RP_EXIT_PARTIAL = 1,  /* some inputs failed (many-file commands) */
	RP_EXIT_USAGE = 2,    /* bad command line */
	RP_EXIT_BADDOC = 3,   /* malformed, tampered or unlicensed input */
	RP_EXIT_NOKEY = 4,    /* no key in the store matches */
	RP_EXIT_REVOKED = 5,  /* the key is revoked (or destroyed) */
	RP_EXIT_SYSTEM = 6,   /* I/O or system error */
	RP_EXIT_STORE = 7,    /* store refused: passphrase, lock, key state */
	RP_EXIT_STOPPED = 8,  /* run: stopped (signal, keystore down, disk
			       * full); run again */
	RP_EXIT_RETIRING = 9, /* under a retiring key: 'key keep' it */
};

#define RP_EXIT_CODES_HELP                                                     \
	"Exit codes:\n"                                                        \
	"  0  success\n"                                                       \
	"  1  some inputs failed (commands over many files; for run, also\n"   \
	"     documents left busy or that a rewrite cannot keep whole)\n"      \
	"  2  usage error\n"                                                   \
	"  3  malformed, tampered or unlicensed input\n"                       \
	"  4  no key in the store matches\n"                                   \
	"  5  the key is revoked or destroyed\n"                               \
	"  6  I/O or system error\n"                                           \
	"  7  the store refused: wrong passphrase, locked, existing output,\n" \
	"     or a key state that does not allow the operation\n"              \
	"  8  run or verify stopped (a signal, the keystore unavailable, "     \
	"the\n"                                                                \
	"     disk full or read-only, out of descriptors or memory, the\n"     \
	"     target key revoked or replaced meanwhile): run it again\n"       \
	"  9  the key is retiring: it opens nothing; 'reprotect key keep'\n"   \
	"     it before its destruction date to open its documents (run:\n"    \
	"     documents were found under a retiring key)\n"

#define RP_COMMON_HELP                                                         \
	"Common options:\n"                                                    \
	"  --store DIR            the store folder (env REPROTECT_STORE;\n"    \
	"                         default $XDG_DATA_HOME/reprotect)\n"         \
	"  --passphrase-file FILE read the store passphrase from FILE\n"       \
	"                         (else env REPROTECT_PASSPHRASE, else a\n"    \
	"                         prompt on the terminal)\n"                   \
	"  --pkcs11-pin-file FILE the PKCS#11 token PIN, for stores on a\n"    \
	"                         token (else env REPROTECT_PKCS11_PIN)\n"     \
	"  -h, --help             this help\n"

/* Options every command takes. */
struct rp_cli {
	const char *prog;
	const char *store_dir; /* NULL: default */
	const char *pass_file; /* NULL: env or prompt */
	const char *pin_file;  /* NULL: env REPROTECT_PKCS11_PIN */
	int no_auto_purge;     /* key purge: it purges, and says so itself */
};

/* Long option ids shared by every command (beyond ASCII). */
enum {
	RP_OPT_STORE = 1000,
	RP_OPT_PASSFILE,
	RP_OPT_PINFILE,
	RP_OPT_FIRST_CMD, /* commands number their own options from here */
};

#define RP_COMMON_LONGOPTS                                                     \
	{ "store", required_argument, NULL, RP_OPT_STORE },                   \
		{ "passphrase-file", required_argument, NULL,                 \
		  RP_OPT_PASSFILE },                                          \
		{ "pkcs11-pin-file", required_argument, NULL,                 \
		  RP_OPT_PINFILE },                                           \
		{ "help", no_argument, NULL, 'h' }

/*
 * rp_cli_common_opt handles a shared option `c`; returns 1 if it was one.
 */
int rp_cli_common_opt(struct rp_cli *cli, int c, const char *arg);

struct rp_buf;

/*
 * rp_cli_read_file reads a file the user named (a key to import, a backup,
 * a share, a passphrase file); a missing file is an I/O error (exit 6).
 */
enum rp_err rp_cli_read_file(struct rp_buf *out, struct rp_status *st,
			     const char *path, size_t max);

/* rp_cli_fmt_time writes a Unix time as UTC ISO 8601, or "-" for 0. */
void rp_cli_fmt_time(char out[32], uint64_t t);

/* rp_cli_exit maps an error to the exit code. */
int rp_cli_exit(enum rp_err err);

/* rp_cli_error prints "reprotect: <msg>" to stderr and returns the code. */
int rp_cli_error(const struct rp_status *st);

/* rp_cli_usage prints a usage error and a hint; returns RP_EXIT_USAGE. */
int rp_cli_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * rp_cli_passphrase gets the passphrase: --passphrase-file, then
 * REPROTECT_PASSPHRASE, then a prompt on the terminal (twice when
 * `is_new`). The caller cleanses and frees *out.
 */
enum rp_err rp_cli_passphrase(const struct rp_cli *cli, struct rp_status *st,
			      int is_new, char **out, size_t *out_len);

/* rp_cli_store_dir resolves the store folder. */
enum rp_err rp_cli_store_dir(const struct rp_cli *cli, struct rp_status *st,
			     char *out, size_t out_cap);

/*
 * rp_cli_purge_due destroys every retiring key whose waiting period is
 * over (the audit log sealed: a '.begin' record first, the census that
 * allowed it in both), printing a line for each to `out` after `prefix`.
 * The caller
 * holds the store's lock. Returns how many, or -1 (the failure in `st`).
 */
int rp_cli_purge_due(struct rp_store *s, struct rp_status *st, FILE *out,
		     const char *prefix);

/*
 * rp_cli_open_store opens the store (asking for the passphrase). Retiring
 * keys whose waiting period is over are destroyed first, saying so on
 * stderr (rp_cli_purge_due).
 */
enum rp_err rp_cli_open_store(const struct rp_cli *cli, struct rp_status *st,
			      struct rp_store **out);

/*
 * rp_cli_pin reads the PKCS#11 PIN (--pkcs11-pin-file, else
 * REPROTECT_PKCS11_PIN); *out is NULL if neither is given. The caller
 * cleanses and frees *out (1024 bytes).
 */
enum rp_err rp_cli_pin(const struct rp_cli *cli, struct rp_status *st,
		       char **out, size_t *out_len);

/*
 * rp_cli_confirm asks on the terminal to type `word` to go on, unless
 * `is_yes`. Without a terminal and without --yes, it refuses. Returns 1
 * to go on, 0 (with a message printed) not to.
 */
int rp_cli_confirm(const char *what, const char *word, int is_yes);

/* rp_cli_audit appends an audit record, printing a warning on failure. */
void rp_cli_audit(struct rp_store *s, const char *op, const uint8_t *key_id,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * rp_cli_audit_gate appends the record of an operation about to happen,
 * before it happens: the audit log is sealed, so an operation whose
 * record cannot be written is not done. Returns the failure (in `st`,
 * saying so) or RP_OK. `op` gets ".begin" appended; the record after the
 * operation (rp_cli_audit) says how it ended.
 */
RP_MUST_CHECK enum rp_err
rp_cli_audit_gate(struct rp_store *s, struct rp_status *st, const char *op,
		  const uint8_t *key_id, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* rp_cli_flush_usage records the command's key usage in the audit log. */
void rp_cli_flush_usage(struct rp_store *s, const char *command);

/* Shared by the commands that drive the engine (run, verify, census). */
struct rp_run_stats_view;

/* rp_cli_parse_u64 parses a canonical decimal; 1 if it is one. */
int rp_cli_parse_u64(const char *s, uint64_t *out);

/*
 * rp_cli_parse_shard parses --shard I/N, or N with I from
 * JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID; 1 if valid (I < N).
 */
int rp_cli_parse_shard(const char *arg, uint64_t *i, uint64_t *n);

/* rp_cli_parse_io parses --io uring|sync; 1 if it is one of them */
int rp_cli_parse_io(const char *arg, enum rp_run_io *out);

/* progress on stderr: a line redrawn on a terminal, else one per 10 s */
struct rp_cli_progress {
	int is_tty;
	double last_line;
};
void rp_cli_show_progress(void *arg, const struct rp_run_stats_view *v);

/* rp_cli_print_line prints "reprotect: LINE" on stderr (engine logs). */
void rp_cli_print_line(void *arg, const char *line);

/*
 * SIGINT and SIGTERM set rp_cli_stop_flag (no new document starts); a
 * second one exits at once (130). rp_cli_on_signals installs them.
 */
extern volatile sig_atomic_t rp_cli_stop_flag;
void rp_cli_on_signals(void);

/*
 * rp_cli_census_for_retire checks that the census statement at `path`
 * lets key `idx` retire: good (this store's, signer not revoked, signature
 * verifies), whole (not one shard), taken after the key was archived and
 * after the last run that moved documents and the last rekey (the audit
 * log), no document under the key and none it could not attribute, and
 * every one of `roots` inside its roots. `digest` gets the statement's
 * SHA-256. RP_ERR_STATE saying what is missing otherwise.
 */
enum rp_err rp_cli_census_for_retire(struct rp_store *s, struct rp_status *st,
				     const char *path, size_t idx,
				     const char *const *roots, size_t num_roots,
				     uint8_t digest[RP_ATLEAST(32)]);

/* the commands: argc/argv start at the command name */
int rp_cmd_rekey(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_template(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_world(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_audit(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_run(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_recover(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_census(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_report(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_quota(struct rp_cli *cli, int argc, char **argv);

struct rp_wal_recovery;
/* a recovery (rp_run_recover) shown to a person, or in a JSON report */
void rp_cli_recovery_print(const struct rp_wal_recovery *r);
void rp_cli_recovery_json(FILE *f, const struct rp_wal_recovery *r);
int rp_cmd_init(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_key(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_protect(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_unprotect(struct rp_cli *cli, int argc, char **argv);
int rp_cmd_inspect(struct rp_cli *cli, int argc, char **argv);

#endif
