#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "rp_b64.h"
#include "rp_buf.h"
#include "rp_file.h"
#include "lifecycle.h"
#include "rp_json.h"

static const char help[] =
	"usage: reprotect key create [--alg ALG] [--activate] [--exportable]\n"
	"       reprotect key import FILE [--activate] [--exportable]\n"
	"       reprotect key list [--json]\n"
	"       reprotect key show ID [--json]\n"
	"       reprotect key backup ID -o FILE\n"
	"       reprotect key restore FILE\n"
	"       reprotect key replicate FILE --to-token LABEL\n"
	"       reprotect key revoke ID [--yes] [--force]\n"
	"       reprotect key destroy ID --without-census [--yes]\n"
	"       reprotect key retire ID --census FILE --root PATH...\n"
	"                            [--wait DAYS]\n"
	"       reprotect key keep ID\n"
	"       reprotect key purge\n"
	"       reprotect key export ID [-o FILE]\n"
	"\n"
	"create   generates a key on the store's backend (soft, or the "
	"PKCS#11\n"
	"         token of a store made with 'init --backend pkcs11'), state\n"
	"         pending; --activate makes it active and archives the\n"
	"         previously active key. ALG: rsa2048 (default), rsa3072,\n"
	"         rsa4096, x25519 (X25519 wrapping plus an Ed25519 signing\n"
	"         key derived from it).\n"
	"import   brings your own key (BYOK): a PEM RSA private key (PKCS#1\n"
	"         or PKCS#8, unencrypted; 2048, 3072 or 4096 bits) or an age\n"
	"         X25519 identity file (AGE-SECRET-KEY-1...).\n"
	"list     every key: id, algorithm, state, dates, backend, flags\n"
	"         (--json: and its replicas).\n"
	"show     one key, by id or a unique prefix of 4+ hex digits, with\n"
	"         its replicas.\n"
	"backup   writes the key, encrypted and bound to this store's\n"
	"         security world, to FILE (0600; never overwrites).\n"
	"restore  installs a key from its backup: a revoked key becomes\n"
	"         archived again and its documents open again.\n"
	"replicate puts a key of the store's PKCS#11 token on token LABEL\n"
	"         too (same module and PIN), from its backup, which only a\n"
	"         token of the same HSM security world (holding the world's\n"
	"         backup key) unwraps; what lands on LABEL is checked to be\n"
	"         the key of the backup. Each unwrap with the key then goes\n"
	"         to whichever of its token and replicas was asked the\n"
	"         fewest operations, so their rates add up (signing stays on\n"
	"         the store's token). Up to 8 replicas per key. A replica\n"
	"         token that is away stops a run (exit 8) until it is back.\n"
	"         Refused: a key not in the store (add it with restore), a\n"
	"         soft key, the store's own token, a replica listed already,\n"
	"         a revoked, destroyed or retiring key, a token that is not\n"
	"         there or has no backup key of the world.\n"
	"revoke   no document under the key opens any more, and its material\n"
	"         is erased from the store (its replica tokens too, which are\n"
	"         no longer listed: replicate again after a restore) until it\n"
	"         is restored from its backup. Refused for a key never backed\n"
	"         up, unless --force. Revoking the active key stops all\n"
	"         protection until a rekey. A replica token that cannot be\n"
	"         reached fails the revoke; revoking again erases it there.\n"
	"destroy  a revoked key, for good: its documents can never be opened\n"
	"         again and its backups are refused. --without-census says\n"
	"         to destroy it without proof that no document is left\n"
	"         under it, and the audit log records that none was given\n"
	"         (retire is the way with a proof). Its material is erased\n"
	"         from its token and every replica token; one that cannot be\n"
	"         reached fails the command and stays listed ('key show'),\n"
	"         and 'key purge' erases the key there later.\n"
	"retire   an archived key, with proof that nothing depends on it: a\n"
	"         census (reprotect census) signed by this store, whole (all\n"
	"         shards merged), taken after the key was archived and after\n"
	"         the last run that moved documents and the last rekey,\n"
	"         covering every --root PATH, showing no document under the\n"
	"         key and none it could not attribute. The key opens nothing\n"
	"         from then on (exit code 9, with the date) and is destroyed\n"
	"         by the first command after --wait DAYS (default 7; the\n"
	"         store's minimum, set at init, cannot be lowered).\n"
	"keep     cancels a retirement within the waiting period: the key\n"
	"         is archived again and opens its documents.\n"
	"purge    destroys every retiring key whose waiting period is over\n"
	"         (any command that opens the store does it too, and says\n"
	"         so); the audit log records the census that allowed it.\n"
	"         It also erases what a destroy or purge cut short left of a\n"
	"         destroyed key's material, on its replica tokens too.\n"
	"export   prints the private key (PEM, or an age identity): only for\n"
	"         keys created or imported with --exportable.\n"
	"\n"
	"  --yes     do not ask for confirmation (revoke, destroy)\n"
	"  --force   revoke a key that was never backed up\n"
	"  --without-census  destroy without proof that no document is\n"
	"            left under the key (required)\n"
	"  --census FILE     the census statement (retire)\n"
	"  --root PATH       a root the census must cover (retire; one or\n"
	"            more)\n"
	"  --wait DAYS       the waiting period before destruction (retire)\n"
	"  --to-token LABEL  the token to put the key on (replicate)\n"
	"  -o FILE   output file (backup, export)\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

enum {
	OPT_ALG = RP_OPT_FIRST_CMD,
	OPT_ACTIVATE,
	OPT_EXPORTABLE,
	OPT_JSON,
	OPT_YES,
	OPT_FORCE,
	OPT_WITHOUT_CENSUS,
	OPT_CENSUS,
	OPT_ROOT,
	OPT_WAIT,
	OPT_TO_TOKEN,
};

/* what 'key retire' is given */
struct retire_args {
	const char *census;
	const char *roots[64];
	size_t num_roots;
	uint64_t wait_days; /* 0: the default (the store's minimum or more) */
};

static void print_created(const struct rp_store *s, size_t idx)
{
	const struct rp_key_info *k = &rp_store_keyring(s)->keys[idx];
	char hex[2 * RP_KEY_ID_LEN + 1];

	rp_key_id_hex(hex, k->id);
	printf("%s %s %s\n", hex, rp_key_alg_name(k->alg),
	       rp_key_state_name(k->state));
}

/* replicas_json prints `"replicas": [...]`: key `k`'s replica tokens */
static void replicas_json(const struct rp_keyring *kr,
			  const struct rp_key_info *k)
{
	size_t first;
	const size_t n = rp_keyring_replicas(kr, k->id, &first);

	printf("\"replicas\": [");
	for (size_t i = first; i < first + n; i++) {
		printf("%s", i > first ? ", " : "");
		rp_json_cstr(stdout, kr->replicas[i].token);
	}
	printf("]");
}

static void key_json(const struct rp_keyring *kr, const struct rp_key_info *k)
{
	char hex[2 * RP_KEY_ID_LEN + 1];
	char t[8][32];

	rp_key_id_hex(hex, k->id);
	rp_cli_fmt_time(t[0], k->created_at);
	rp_cli_fmt_time(t[1], k->activated_at);
	rp_cli_fmt_time(t[2], k->archived_at);
	rp_cli_fmt_time(t[3], k->revoked_at);
	rp_cli_fmt_time(t[4], k->destroyed_at);
	rp_cli_fmt_time(t[5], k->backed_up_at);
	rp_cli_fmt_time(t[6], k->state == RP_KEY_RETIRING ? k->retired_at : 0);
	rp_cli_fmt_time(t[7], k->state == RP_KEY_RETIRING ? k->purge_at : 0);
	printf("{\"id\": \"%s\", \"alg\": \"%s\", \"state\": \"%s\", "
	       "\"backend\": \"%s\", \"exportable\": %s, \"imported\": %s, "
	       "\"created\": \"%s\", \"activated\": \"%s\", "
	       "\"archived\": \"%s\", \"revoked\": \"%s\", "
	       "\"destroyed\": \"%s\", \"backed_up\": \"%s\", "
	       "\"retired\": \"%s\", \"purge_at\": \"%s\", ",
	       hex, rp_key_alg_name(k->alg), rp_key_state_name(k->state),
	       k->backend == RP_BACKEND_SOFT ? "soft" : "pkcs11",
	       k->flags & RP_KEY_EXPORTABLE ? "true" : "false",
	       k->flags & RP_KEY_IMPORTED ? "true" : "false", t[0], t[1], t[2],
	       t[3], t[4], t[5], t[6], t[7]);
	replicas_json(kr, k);
	printf("}");
}

static void list_json(const struct rp_keyring *kr)
{
	printf("[");
	for (size_t i = 0; i < kr->num_keys; i++) {
		printf("%s\n  ", i ? "," : "");
		key_json(kr, &kr->keys[i]);
	}
	printf("%s]\n", kr->num_keys ? "\n" : "");
}

static void show_text(const struct rp_keyring *kr, const struct rp_key_info *k)
{
	char hex[2 * RP_KEY_ID_LEN + 1];
	char t[32];
	size_t first;
	const size_t n = rp_keyring_replicas(kr, k->id, &first);

	rp_key_id_hex(hex, k->id);
	printf("id:          %s\n", hex);
	printf("algorithm:   %s\n", rp_key_alg_name(k->alg));
	printf("state:       %s\n", rp_key_state_name(k->state));
	printf("backend:     %s\n",
	       k->backend == RP_BACKEND_SOFT ? "soft" : "pkcs11");
	printf("exportable:  %s\n",
	       k->flags & RP_KEY_EXPORTABLE ? "yes" : "no");
	printf("imported:    %s\n", k->flags & RP_KEY_IMPORTED ? "yes" : "no");
	rp_cli_fmt_time(t, k->created_at);
	printf("created:     %s\n", t);
	rp_cli_fmt_time(t, k->activated_at);
	printf("activated:   %s\n", t);
	rp_cli_fmt_time(t, k->archived_at);
	printf("archived:    %s\n", t);
	rp_cli_fmt_time(t, k->revoked_at);
	printf("revoked:     %s\n", t);
	rp_cli_fmt_time(t, k->destroyed_at);
	printf("destroyed:   %s\n", t);
	rp_cli_fmt_time(t, k->backed_up_at);
	printf("backed up:   %s\n", t);
	if (k->state == RP_KEY_RETIRING) {
		char c_hex[65];

		rp_cli_fmt_time(t, k->retired_at);
		printf("retired:     %s\n", t);
		rp_cli_fmt_time(t, k->purge_at);
		printf("purge at:    %s\n", t);
		rp_hex_encode(c_hex, k->retire_census,
			      sizeof(k->retire_census));
		printf("census:      %s\n", c_hex);
	}
	/* a revoked or destroyed key's replicas: material left to erase */
	if (n && (k->state == RP_KEY_REVOKED || k->state == RP_KEY_DESTROYED)) {
		printf("left on:     ");
	} else if (n) {
		printf("replicas:    ");
	}
	for (size_t i = first; i < first + n; i++) {
		printf("%s%s", i > first ? ", " : "", kr->replicas[i].token);
	}
	if (n && k->state == RP_KEY_REVOKED) {
		printf(" (to erase: 'reprotect key revoke %.16s')\n", hex);
	} else if (n && k->state == RP_KEY_DESTROYED) {
		printf(" (to erase: 'reprotect key purge')\n");
	} else if (n) {
		printf("\n");
	}
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
		rp_cli_fmt_time(t0, k->created_at);
		rp_cli_fmt_time(t1, k->activated_at);
		printf("%.16s  %-8s  %-9s  %-20s  %-20s  %-7s  %s%s\n", hex,
		       rp_key_alg_name(k->alg), rp_key_state_name(k->state), t0,
		       t1, k->backend == RP_BACKEND_SOFT ? "soft" : "pkcs11",
		       k->flags & RP_KEY_EXPORTABLE ? "exportable" : "-",
		       k->flags & RP_KEY_IMPORTED ? ",imported" : "");
	}
}

static int needs_id(const char *sub)
{
	static const char *const subs[] = { "show",    "backup", "revoke",
					    "destroy", "export", "retire",
					    "keep" };

	for (size_t i = 0; i < RP_ARRAY_LEN(subs); i++) {
		if (!strcmp(sub, subs[i])) {
			return 1;
		}
	}
	return 0;
}

/* write_out writes `b` to `path` (exclusive, 0600) or stdout for NULL/- */
static enum rp_err write_out(struct rp_status *st, const char *path,
			     const struct rp_buf *b)
{
	if (!path || !strcmp(path, "-")) {
		if (fwrite(b->p, 1, b->len, stdout) != b->len) {
			return rp_status_fail(
				st, RP_ERR_IO,
				"cannot write to standard output");
		}
		return RP_OK;
	}
	return rp_file_write_atomic(st, path, b->p, b->len, 1);
}

/* retire: the census checked under the lock, then the key retiring */
static enum rp_err key_retire(struct rp_status *st, struct rp_store *s,
			      size_t idx, const struct retire_args *ra)
{
	const struct rp_keyring *kr = rp_store_keyring(s);
	uint32_t days = (uint32_t)ra->wait_days;
	uint8_t digest[32];
	char c_hex[65], when[32], hex[2 * RP_KEY_ID_LEN + 1];
	enum rp_err err;

	if (!days) {
		days = rp_keyring_min_retire_days(kr) > RP_RETIRE_DEFAULT_DAYS
			       ? rp_keyring_min_retire_days(kr)
			       : RP_RETIRE_DEFAULT_DAYS;
	}
	err = rp_store_key_retire_check(s, st, idx, days);
	if (!err) {
		err = rp_cli_census_for_retire(s, st, ra->census, idx,
					       ra->roots, ra->num_roots,
					       digest);
	}
	if (err) {
		return err;
	}
	rp_hex_encode(c_hex, digest, sizeof(digest));
	err = rp_cli_audit_gate(s, st, "key.retire", kr->keys[idx].id,
				"census=%s wait=%ud", c_hex, days);
	if (!err) {
		err = rp_store_key_retire(s, st, idx, days, digest);
	}
	if (err) {
		return err;
	}
	kr = rp_store_keyring(s);
	rp_key_id_hex(hex, kr->keys[idx].id);
	rp_cli_fmt_time(when, kr->keys[idx].purge_at);
	printf("retiring %s: it opens nothing from now on and is destroyed "
	       "at the first command after %s; 'reprotect key keep %.16s' "
	       "cancels it until then\n",
	       hex, when, hex);
	rp_cli_audit(s, "key.retire", kr->keys[idx].id, "census=%s purge_at=%s",
		     c_hex, when);
	return RP_OK;
}

/*
 * erase_left erases what a destroy or purge cut short left of destroyed
 * keys' material (rp_store_key_erase_destroyed); each replica token it
 * erases a key from is said on stdout and in the audit log ("key.erase")
 */
static enum rp_err erase_left(struct rp_store *s, struct rp_status *st)
{
	const struct rp_keyring *kr = rp_store_keyring(s);
	struct rp_replica *left = NULL;
	size_t num_left = 0;
	enum rp_err err = RP_OK;

	for (size_t i = 0; i < kr->num_replicas; i++) {
		const long k = rp_keyring_find_id(kr, kr->replicas[i].key_id);

		num_left += kr->keys[k].state == RP_KEY_DESTROYED;
	}
	if (num_left) {
		left = malloc(num_left * sizeof(*left));
		if (!left) {
			return rp_status_fail(st, RP_ERR_NOMEM,
					      "out of memory");
		}
		num_left = 0;
		for (size_t i = 0; i < kr->num_replicas; i++) {
			const long k =
				rp_keyring_find_id(kr, kr->replicas[i].key_id);

			if (kr->keys[k].state == RP_KEY_DESTROYED) {
				left[num_left++] = kr->replicas[i];
			}
		}
		err = rp_cli_audit_gate(s, st, "key.erase", NULL,
					"replicas=%zu", num_left);
	}
	if (!err) {
		err = rp_store_key_erase_destroyed(s, st);
	}
	/* what is no longer listed was erased, whatever failed besides */
	kr = rp_store_keyring(s);
	for (size_t i = 0; i < num_left && left; i++) {
		const struct rp_replica *r = &left[i];
		char hex[2 * RP_KEY_ID_LEN + 1];
		size_t first;
		const size_t n = rp_keyring_replicas(kr, r->key_id, &first);
		int is_listed = 0;

		for (size_t j = first; j < first + n; j++) {
			is_listed |= !strcmp(kr->replicas[j].token, r->token);
		}
		if (is_listed) {
			continue;
		}
		rp_key_id_hex(hex, r->key_id);
		printf("erased %s from token '%s'\n", hex, r->token);
		rp_cli_audit(s, "key.erase", r->key_id, "token=%s", r->token);
	}
	free(left);
	return err;
}

static enum rp_err key_life(struct rp_cli *cli, struct rp_status *st,
			    struct rp_store *s, const char *sub,
			    const char *arg, const char *out, int is_yes,
			    int is_force, int is_json,
			    const struct retire_args *ra, const char *to_token)
{
	struct rp_buf b = { 0 };
	char hex[2 * RP_KEY_ID_LEN + 1];
	char word[17];
	size_t idx = 0;
	long found = -1;
	enum rp_err err = RP_OK;

	(void)cli;
	if (needs_id(sub)) {
		found = rp_keyring_find_hex(rp_store_keyring(s), st, arg);
		if (found < 0) {
			return st->err;
		}
		idx = (size_t)found;
		rp_key_id_hex(hex, rp_store_keyring(s)->keys[idx].id);
		snprintf(word, sizeof(word), "%.16s", hex);
	}
	if (!strcmp(sub, "show")) {
		if (is_json) {
			key_json(rp_store_keyring(s),
				 &rp_store_keyring(s)->keys[idx]);
			printf("\n");
		} else {
			show_text(rp_store_keyring(s),
				  &rp_store_keyring(s)->keys[idx]);
		}
		return RP_OK;
	}
	if (!strcmp(sub, "export")) {
		err = rp_cli_audit_gate(s, st, "key.export",
					rp_store_keyring(s)->keys[idx].id,
					"to=%s", out ? out : "stdout");
		if (!err) {
			err = rp_store_key_export(s, st, idx, &b);
		}
		if (!err) {
			err = write_out(st, out, &b);
		}
		if (!err) {
			rp_cli_audit(s, "key.export",
				     rp_store_keyring(s)->keys[idx].id, "to=%s",
				     out ? out : "stdout");
		}
		goto out;
	}
	if (!strcmp(sub, "restore") || !strcmp(sub, "replicate")) {
		const int is_replicate = !strcmp(sub, "replicate");
		const char *op = is_replicate ? "key.replicate" : "key.restore";
		const char *to = is_replicate && to_token ? to_token : "";

		err = rp_cli_read_file(&b, st, arg, 64 * 1024);
		if (!err) {
			err = rp_store_lock(s, st, 10000);
		}
		if (!err) {
			err = rp_cli_audit_gate(s, st, op, NULL, "from=%s%s%s",
						arg, *to ? " token=" : "", to);
		}
		if (!err && is_replicate) {
			err = rp_store_key_replicate(s, st, b.p, b.len, to,
						     &idx);
		} else if (!err) {
			err = rp_store_key_restore(s, st, b.p, b.len, &idx);
		}
		if (err) {
			goto out;
		}
		rp_key_id_hex(hex, rp_store_keyring(s)->keys[idx].id);
		if (is_replicate) {
			size_t first;

			printf("replicated %s to token '%s': its documents "
			       "now open on %zu tokens\n",
			       hex, to,
			       1 + rp_keyring_replicas(
					   rp_store_keyring(s),
					   rp_store_keyring(s)->keys[idx].id,
					   &first));
		} else {
			printf("restored %s: %s\n", hex,
			       rp_key_state_name(
				       rp_store_keyring(s)->keys[idx].state));
		}
		rp_cli_audit(s, op, rp_store_keyring(s)->keys[idx].id,
			     "from=%s%s%s", arg, *to ? " token=" : "", to);
		goto out;
	}
	err = rp_store_lock(s, st, 10000);
	if (err) {
		goto out;
	}
	/* the lock re-read the keyring: find the key again */
	found = rp_keyring_find_hex(rp_store_keyring(s), st, arg);
	if (found < 0) {
		err = st->err;
		goto out;
	}
	idx = (size_t)found;
	if (!strcmp(sub, "backup")) {
		err = rp_cli_audit_gate(s, st, "key.backup",
					rp_store_keyring(s)->keys[idx].id,
					"to=%s", out);
		if (!err) {
			err = rp_store_key_backup(s, st, idx, &b);
		}
		if (!err) {
			err = write_out(st, out, &b);
		}
		if (!err) {
			printf("backed up %s to '%s'\n", hex, out);
			rp_cli_audit(s, "key.backup",
				     rp_store_keyring(s)->keys[idx].id, "to=%s",
				     out);
		}
	} else if (!strcmp(sub, "revoke")) {
		char what[400];

		snprintf(what, sizeof(what),
			 "Revoking key %s: documents under it will no longer "
			 "open until it is restored from its backup.",
			 word);
		if (!rp_cli_confirm(what, word, is_yes)) {
			err = rp_status_fail(st, RP_ERR_USAGE,
					     "revoke not confirmed");
			goto out;
		}
		err = rp_cli_audit_gate(s, st, "key.revoke",
					rp_store_keyring(s)->keys[idx].id,
					"force=%d", is_force);
		if (!err) {
			err = rp_store_key_revoke(s, st, idx, is_force);
		}
		if (!err) {
			const int was_active =
				rp_keyring_active(rp_store_keyring(s)) < 0;

			printf("revoked %s\n", hex);
			if (was_active) {
				printf("no key is active now: 'reprotect "
				       "rekey' before protecting again\n");
			}
			rp_cli_audit(s, "key.revoke",
				     rp_store_keyring(s)->keys[idx].id,
				     "force=%d", is_force);
		}
	} else if (!strcmp(sub, "retire")) {
		err = key_retire(st, s, idx, ra);
	} else if (!strcmp(sub, "keep")) {
		err = rp_cli_audit_gate(s, st, "key.keep",
					rp_store_keyring(s)->keys[idx].id, "-");
		if (!err) {
			err = rp_store_key_keep(s, st, idx);
		}
		if (!err) {
			printf("kept %s: archived again, its documents open\n",
			       hex);
			rp_cli_audit(s, "key.keep",
				     rp_store_keyring(s)->keys[idx].id, "-");
		}
	} else if (!strcmp(sub, "destroy")) {
		char what[400];

		snprintf(what, sizeof(what),
			 "Destroying key %s: this cannot be undone. Documents "
			 "under it can never be opened again, and its backups "
			 "will be refused.",
			 word);
		if (rp_store_keyring(s)->keys[idx].state == RP_KEY_REVOKED &&
		    !rp_cli_confirm(what, word, is_yes)) {
			err = rp_status_fail(st, RP_ERR_USAGE,
					     "destroy not confirmed");
			goto out;
		}
		err = rp_cli_audit_gate(s, st, "key.destroy",
					rp_store_keyring(s)->keys[idx].id,
					"census=none");
		if (!err) {
			err = rp_store_key_destroy(s, st, idx);
		}
		if (!err) {
			printf("destroyed %s\n", hex);
			rp_cli_audit(s, "key.destroy",
				     rp_store_keyring(s)->keys[idx].id,
				     "census=none");
		}
	}
out:
	rp_buf_fini(&b);
	return err;
}

int rp_cmd_key(struct rp_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		RP_COMMON_LONGOPTS,
		{ "alg", required_argument, NULL, OPT_ALG },
		{ "activate", no_argument, NULL, OPT_ACTIVATE },
		{ "exportable", no_argument, NULL, OPT_EXPORTABLE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "yes", no_argument, NULL, OPT_YES },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "without-census", no_argument, NULL, OPT_WITHOUT_CENSUS },
		{ "census", required_argument, NULL, OPT_CENSUS },
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "wait", required_argument, NULL, OPT_WAIT },
		{ "to-token", required_argument, NULL, OPT_TO_TOKEN },
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	struct rp_buf data = { 0 };
	const char *sub;
	const char *alg_name = "rsa2048";
	const char *out = NULL;
	const char *to_token = NULL;
	uint8_t alg = 0;
	int is_activate = 0, is_json = 0, is_yes = 0, is_force = 0;
	int is_without_census = 0;
	struct retire_args ra = { 0 };
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
		return rp_cli_usage("key", "give a subcommand: create, import, "
					   "list, show, backup, restore, "
					   "replicate, revoke, destroy, "
					   "retire, keep, purge or export");
	}
	sub = argv[1];
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
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
		case OPT_YES:
			is_yes = 1;
			break;
		case OPT_FORCE:
			is_force = 1;
			break;
		case OPT_WITHOUT_CENSUS:
			is_without_census = 1;
			break;
		case OPT_CENSUS:
			ra.census = optarg;
			break;
		case OPT_ROOT:
			if (ra.num_roots == RP_ARRAY_LEN(ra.roots)) {
				return rp_cli_usage("key", "too many --root");
			}
			ra.roots[ra.num_roots++] = optarg;
			break;
		case OPT_WAIT:
			if (!rp_cli_parse_u64(optarg, &ra.wait_days) ||
			    !ra.wait_days ||
			    ra.wait_days > RP_RETIRE_MAX_DAYS) {
				return rp_cli_usage("key",
						    "--wait: 1 to %d days",
						    RP_RETIRE_MAX_DAYS);
			}
			break;
		case OPT_TO_TOKEN:
			to_token = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			if (!rp_cli_common_opt(cli, c, optarg)) {
				return rp_cli_usage("key", "bad option");
			}
		}
	}
	if ((ra.census || ra.num_roots || ra.wait_days) &&
	    strcmp(sub, "retire")) {
		return rp_cli_usage("key", "--census, --root and --wait go "
					   "with retire");
	}
	if (!to_token != !!strcmp(sub, "replicate")) {
		return rp_cli_usage("key", "replicate needs --to-token LABEL, "
					   "which goes with replicate only");
	}
	if (!strcmp(sub, "create") || !strcmp(sub, "list") ||
	    !strcmp(sub, "purge")) {
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
	} else if (!strcmp(sub, "import") || !strcmp(sub, "restore") ||
		   !strcmp(sub, "replicate")) {
		if (optind + 1 != argc) {
			return rp_cli_usage("key", "%s takes one FILE", sub);
		}
	} else if (needs_id(sub)) {
		if (optind + 1 != argc) {
			return rp_cli_usage("key", "%s takes one key ID", sub);
		}
		if (!strcmp(sub, "backup") && !out) {
			return rp_cli_usage("key", "backup needs -o FILE");
		}
		if (!strcmp(sub, "retire") && (!ra.census || !ra.num_roots)) {
			return rp_cli_usage("key",
					    "retire needs --census FILE and at "
					    "least one --root PATH it must "
					    "cover");
		}
		if (!strcmp(sub, "destroy") && !is_without_census) {
			return rp_cli_usage(
				"key",
				"destroy needs --without-census: nothing can "
				"prove yet that no document is left under the "
				"key, and the audit log will say so");
		}
	} else {
		return rp_cli_usage("key", "unknown subcommand '%s'", sub);
	}

	cli->no_auto_purge = !strcmp(sub, "purge");
	err = rp_cli_open_store(cli, &st, &s);
	if (err) {
		goto out;
	}
	if (!strcmp(sub, "purge")) {
		int n;

		err = rp_store_lock(s, &st, 10000);
		if (err) {
			goto out;
		}
		n = rp_cli_purge_due(s, &st, stdout, "");
		if (n < 0) {
			err = st.err;
			goto out;
		}
		/* and what a destroy or purge cut short left behind */
		err = erase_left(s, &st);
		if (err) {
			goto out;
		}
		if (!n) {
			printf("no retiring key is due\n");
		}
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
	if (strcmp(sub, "create") && strcmp(sub, "import")) {
		err = key_life(cli, &st, s, sub, argv[optind], out, is_yes,
			       is_force, is_json, &ra, to_token);
		goto out;
	}
	err = rp_store_lock(s, &st, 10000);
	if (err) {
		goto out;
	}
	err = rp_cli_audit_gate(
		s, &st, !strcmp(sub, "create") ? "key.create" : "key.import",
		NULL, "%s activate=%d exportable=%d",
		!strcmp(sub, "create") ? rp_key_alg_name(alg) : argv[optind],
		is_activate, !!(flags & RP_KEY_EXPORTABLE));
	if (err) {
		goto out;
	}
	if (!strcmp(sub, "create")) {
		err = rp_store_key_create(s, &st, alg, flags, is_activate,
					  &idx);
	} else {
		err = rp_cli_read_file(&data, &st, argv[optind], 64 * 1024);
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
		const struct rp_key_info *k = &rp_store_keyring(s)->keys[idx];

		print_created(s, idx);
		rp_cli_audit(
			s, !strcmp(sub, "create") ? "key.create" : "key.import",
			k->id, "alg=%s state=%s exportable=%d",
			rp_key_alg_name(k->alg), rp_key_state_name(k->state),
			!!(k->flags & RP_KEY_EXPORTABLE));
	}
out:
	if (err) {
		rc = rp_cli_error(&st);
	}
	rp_buf_fini(&data);
	rp_store_free(s);
	return rc;
}
