#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "doc.h"
#include "rp_b64.h"
#include "rp_json.h"

static const char protect_help[] =
	"usage: reprotect protect IN... [-o OUT | --suffix SUF] [--owner X]\n"
	"                         [--template T] [--compress] [--force]\n"
	"\n"
	"Protects each IN under the store's active key: an age v1 file with\n"
	"one recipient stanza for the key and a signed rp-license stanza.\n"
	"The stock age tool opens it given the key.\n"
	"\n"
	"  -o, --output OUT  the output file (only with one IN)\n"
	"  --suffix SUF      output is IN + SUF (default: .age)\n"
	"  --owner X         record owner X in the license\n"
	"  --template T      record rights template T in the license\n"
	"  --compress        zstd the plaintext first (recorded in the\n"
	"                    license; `age -d | zstd -d` gives it back)\n"
	"  --force           replace an existing output file\n"
	"\n"
	"Outputs are written atomically and created 0600. With several IN,\n"
	"a failure on one does not stop the others (exit code 1).\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

static const char unprotect_help[] =
	"usage: reprotect unprotect IN [-o OUT | -o -] [--allow-unlicensed]\n"
	"                           [--force]\n"
	"\n"
	"Checks the document before writing any plaintext: the license and\n"
	"its signature, its bindings to the recipient stanza and the payload\n"
	"nonce, the key's state, and the header MAC. Then decrypts it to OUT\n"
	"(default: IN without its .age suffix), written atomically and\n"
	"created 0600, or to standard output with -o - (only authenticated\n"
	"chunks are released).\n"
	"\n"
	"  -o, --output OUT     the output file, or - for standard output\n"
	"  --allow-unlicensed   open a file with no license (made by plain\n"
	"                       age) whose recipient is a key in the store\n"
	"  --force              replace an existing output file\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

static const char inspect_help[] =
	"usage: reprotect inspect FILE [--json]\n"
	"\n"
	"Shows a document's recipient (key id and algorithm), its license\n"
	"fields, the status of each check (license, key, bindings,\n"
	"signature, header MAC, payload end) and whether the key is in the\n"
	"store and its state. The payload end is checked when the key\n"
	"unwraps and the header verifies: the payload is as long as its\n"
	"license says and its last chunk authenticates (a document cut or\n"
	"extended fails; damage in the middle needs `verify`). Exit code 0\n"
	"when every check passes, else the code of the first failing check.\n"
	"\n"
	"  --json   one JSON object on standard output\n"
	"\n" RP_COMMON_HELP "\n" RP_EXIT_CODES_HELP;

enum {
	OPT_SUFFIX = RP_OPT_FIRST_CMD,
	OPT_OWNER,
	OPT_TEMPLATE,
	OPT_COMPRESS,
	OPT_FORCE,
	OPT_UNLICENSED,
	OPT_JSON,
};

static const struct option doc_opts[] = {
	RP_COMMON_LONGOPTS,
	{ "output", required_argument, NULL, 'o' },
	{ "suffix", required_argument, NULL, OPT_SUFFIX },
	{ "owner", required_argument, NULL, OPT_OWNER },
	{ "template", required_argument, NULL, OPT_TEMPLATE },
	{ "compress", no_argument, NULL, OPT_COMPRESS },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "allow-unlicensed", no_argument, NULL, OPT_UNLICENSED },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

struct doc_args {
	const char *out;
	const char *suffix;
	struct rp_protect_opts p;
	struct rp_unprotect_opts u;
	int is_json;
	int is_help;
	int n_out_opts;
};

/* parse_doc_opts returns -1 to continue, else an exit code */
static int parse_doc_opts(struct rp_cli *cli, const char *cmd, int argc,
			  char **argv, struct doc_args *a, const char *help,
			  const int *allowed, size_t num_allowed)
{
	int c;

	memset(a, 0, sizeof(*a));
	while ((c = getopt_long(argc, argv, "ho:", doc_opts, NULL)) != -1) {
		int is_allowed = 0;

		if (c == 'h') {
			fputs(help, stdout);
			return RP_EXIT_OK;
		}
		if (rp_cli_common_opt(cli, c, optarg)) {
			continue;
		}
		for (size_t k = 0; k < num_allowed; k++) {
			is_allowed |= allowed[k] == c;
		}
		if (!is_allowed) {
			if (c != '?') {
				fprintf(stderr,
					"reprotect %s: option '%s' does not "
					"apply here\n",
					cmd, argv[optind - 1]);
			}
			return rp_cli_usage(cmd, "bad option");
		}
		switch (c) {
		case 'o':
			a->out = optarg;
			a->n_out_opts++;
			break;
		case OPT_SUFFIX:
			a->suffix = optarg;
			a->n_out_opts++;
			break;
		case OPT_OWNER:
			a->p.owner = optarg;
			break;
		case OPT_TEMPLATE:
			a->p.template_id = optarg;
			break;
		case OPT_COMPRESS:
			a->p.is_compress = 1;
			break;
		case OPT_FORCE:
			a->p.is_force = 1;
			a->u.is_force = 1;
			break;
		case OPT_UNLICENSED:
			a->u.allow_unlicensed = 1;
			break;
		case OPT_JSON:
			a->is_json = 1;
			break;
		default:
			return rp_cli_usage(cmd, "bad option");
		}
	}
	return -1;
}

int rp_cmd_protect(struct rp_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { 'o',	     OPT_SUFFIX,   OPT_OWNER,
				       OPT_TEMPLATE, OPT_COMPRESS, OPT_FORCE };
	struct doc_args a;
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	size_t num_failed = 0, num_in;
	int rc = parse_doc_opts(cli, "protect", argc, argv, &a, protect_help,
				allowed, RP_ARRAY_LEN(allowed));
	enum rp_err last = RP_OK;

	if (rc >= 0) {
		return rc;
	}
	num_in = (size_t)(argc - optind);
	if (num_in == 0) {
		return rp_cli_usage("protect", "give at least one IN file");
	}
	if (a.n_out_opts > 1) {
		return rp_cli_usage("protect", "give -o or --suffix, not both");
	}
	if (a.out && num_in != 1) {
		return rp_cli_usage("protect", "-o takes exactly one IN file");
	}
	if (a.out && !strcmp(a.out, "-")) {
		return rp_cli_usage("protect",
				    "protect writes to files, not to standard "
				    "output");
	}
	if (a.suffix && !*a.suffix) {
		return rp_cli_usage("protect", "--suffix must not be empty");
	}
	if (a.p.owner && strlen(a.p.owner) > RP_OWNER_MAX) {
		return rp_cli_usage("protect",
				    "--owner is longer than %d bytes",
				    RP_OWNER_MAX);
	}
	if (a.p.template_id && strlen(a.p.template_id) > RP_TEMPLATE_MAX) {
		return rp_cli_usage("protect",
				    "--template is longer than %d bytes",
				    RP_TEMPLATE_MAX);
	}
	if (rp_cli_open_store(cli, &st, &s)) {
		return rp_cli_error(&st);
	}
	for (int i = optind; i < argc; i++) {
		char out[4096];
		struct rp_status fst = { 0 };
		enum rp_err err = RP_OK;
		int n;

		if (a.out) {
			n = snprintf(out, sizeof(out), "%s", a.out);
		} else {
			n = snprintf(out, sizeof(out), "%s%s", argv[i],
				     a.suffix ? a.suffix : ".age");
		}
		if (n < 0 || (size_t)n >= sizeof(out)) {
			err = rp_status_fail(&fst, RP_ERR_USAGE,
					     "path too long");
		}
		if (!err) {
			err = rp_doc_protect(s, &fst, &a.p, argv[i], out);
		}
		if (err) {
			fprintf(stderr, "reprotect: '%s': %s\n", argv[i],
				rp_status_msg(&fst));
			num_failed++;
			last = err;
		}
	}
	rp_cli_flush_usage(s, "protect");
	rp_store_free(s);
	if (num_failed == 0) {
		return RP_EXIT_OK;
	}
	return num_in == 1 ? rp_cli_exit(last) : RP_EXIT_PARTIAL;
}

int rp_cmd_unprotect(struct rp_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { 'o', OPT_UNLICENSED, OPT_FORCE };
	struct doc_args a;
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	char out[4096];
	const char *in;
	enum rp_err err;
	int out_len;
	int rc = parse_doc_opts(cli, "unprotect", argc, argv, &a,
				unprotect_help, allowed, RP_ARRAY_LEN(allowed));

	if (rc >= 0) {
		return rc;
	}
	if (argc - optind != 1) {
		return rp_cli_usage("unprotect", "give exactly one IN file");
	}
	in = argv[optind];
	if (a.out) {
		out_len = snprintf(out, sizeof(out), "%s", a.out);
	} else {
		const size_t n = strlen(in);

		if (n <= 4 || strcmp(in + n - 4, ".age")) {
			return rp_cli_usage("unprotect",
					    "'%s' does not end in .age: give "
					    "-o OUT",
					    in);
		}
		out_len = snprintf(out, sizeof(out), "%.*s", (int)(n - 4), in);
	}
	if (out_len < 0 || (size_t)out_len >= sizeof(out)) {
		return rp_cli_usage("unprotect", "path too long");
	}
	if (rp_cli_open_store(cli, &st, &s)) {
		return rp_cli_error(&st);
	}
	err = rp_doc_unprotect(s, &st, &a.u, in, out);
	rp_cli_flush_usage(s, "unprotect");
	rp_store_free(s);
	if (err) {
		fprintf(stderr, "reprotect: '%s': %s\n", in,
			rp_status_msg(&st));
		return rp_cli_exit(err);
	}
	return RP_EXIT_OK;
}

static const char *check_word(const struct rp_status *c)
{
	return c->err ? rp_err_name(c->err) : "ok";
}

static void json_check(const char *name, const struct rp_status *c, int last)
{
	printf("    \"%s\": {\"status\": \"%s\", \"message\": ", name,
	       check_word(c));
	rp_json_cstr(stdout, c->err ? rp_status_msg(c) : "");
	printf("}%s\n", last ? "" : ",");
}

/* NOT_CHECKED: why the payload's end was not looked at */
#define NOT_CHECKED                                                            \
	"not checked: the key did not unwrap or the header did not verify"

static void json_tail(const struct rp_doc_info *i)
{
	if (i->is_tail_checked) {
		json_check("payload_end", &i->tail_st, 1);
		return;
	}
	printf("    \"payload_end\": {\"status\": \"not_checked\", "
	       "\"message\": \"%s\"}\n",
	       NOT_CHECKED);
}

static void print_json(const char *path, const struct rp_doc_info *i,
		       struct rp_store *s)
{
	const struct rp_keyring *kr = s ? rp_store_keyring(s) : NULL;
	char hex[2 * RP_KEY_ID_LEN + 1], sig_hex[2 * RP_KEY_ID_LEN + 1];
	char doc_hex[2 * RP_DOC_ID_LEN + 1], t[32];

	printf("{\n  \"file\": ");
	rp_json_cstr(stdout, path);
	printf(",\n  \"size\": %llu,\n  \"header_bytes\": %llu,\n"
	       "  \"stanzas\": %zu,\n  \"recipient\": {\"type\": ",
	       (unsigned long long)i->file_size,
	       (unsigned long long)i->header_len, i->num_stanzas);
	rp_json_cstr(stdout, i->recip_type);
	printf(", \"arg\": ");
	rp_json_cstr(stdout, i->recip_arg);
	printf("},\n  \"licensed\": %s,\n", i->has_license ? "true" : "false");
	if (i->has_license && !i->license_st.err) {
		rp_key_id_hex(hex, i->lic.key_id);
		rp_key_id_hex(sig_hex, i->lic.sig.key_id);
		rp_hex_encode(doc_hex, i->lic.doc_id, RP_DOC_ID_LEN);
		rp_cli_fmt_time(t, i->lic.issued_at);
		printf("  \"license\": {\"version\": %u, \"document_id\": "
		       "\"%s\", \"key_id\": \"%s\", \"template\": ",
		       i->lic.version, doc_hex, hex);
		rp_json_cstr(stdout, i->lic.template_id);
		printf(", \"owner\": ");
		rp_json_cstr(stdout, i->lic.owner);
		printf(", \"issued_at\": \"%s\", \"encoding\": \"%s\", "
		       "\"plaintext_size\": %llu, \"signature\": {\"alg\": "
		       "\"%s\", \"key_id\": \"%s\", \"batch_size\": %u, "
		       "\"leaf_index\": %u, \"path_len\": %zu}},\n",
		       t, i->lic.encoding == RP_ENC_ZSTD ? "zstd" : "none",
		       (unsigned long long)i->lic.plaintext_size,
		       i->lic.sig.alg == RP_SIG_ED25519 ? "ed25519"
							: "rsa-pss-sha256",
		       sig_hex, i->lic.sig.batch_size, i->lic.sig.leaf_index,
		       i->lic.sig.num_path);
	}
	if (i->key_idx >= 0 && kr) {
		const struct rp_key_info *k = &kr->keys[i->key_idx];

		rp_key_id_hex(hex, k->id);
		printf("  \"key\": {\"id\": \"%s\", \"alg\": \"%s\", "
		       "\"in_store\": true, \"state\": \"%s\"},\n",
		       hex, rp_key_alg_name(k->alg),
		       rp_key_state_name(k->state));
	} else {
		printf("  \"key\": {\"in_store\": false},\n");
	}
	printf("  \"checks\": {\n");
	json_check("license", &i->license_st, 0);
	json_check("key", &i->key_st, 0);
	json_check("stanza_binding", &i->stanza_st, 0);
	json_check("nonce_binding", &i->nonce_st, 0);
	json_check("signature", &i->sig_st, 0);
	json_check("header_mac", &i->mac_st, 0);
	json_tail(i);
	printf("  }\n}\n");
}

static void text_check(const char *name, const struct rp_status *c)
{
	printf("  %-15s %s%s%s\n", name, check_word(c), c->err ? ": " : "",
	       c->err ? rp_status_msg(c) : "");
}

static void print_text(const char *path, const struct rp_doc_info *i,
		       struct rp_store *s)
{
	const struct rp_keyring *kr = s ? rp_store_keyring(s) : NULL;
	char hex[2 * RP_KEY_ID_LEN + 1], t[32];

	printf("file:          %s\n", path);
	printf("size:          %llu bytes (header %llu)\n",
	       (unsigned long long)i->file_size,
	       (unsigned long long)i->header_len);
	printf("recipient:     %s %s\n", i->recip_type[0] ? i->recip_type : "-",
	       i->recip_arg);
	if (i->key_idx >= 0 && kr) {
		const struct rp_key_info *k = &kr->keys[i->key_idx];

		rp_key_id_hex(hex, k->id);
		printf("key:           %s (%s), in the store, %s\n", hex,
		       rp_key_alg_name(k->alg), rp_key_state_name(k->state));
	} else if (i->has_license && !i->license_st.err) {
		rp_key_id_hex(hex, i->lic.key_id);
		printf("key:           %s, not in the store\n", hex);
	} else {
		printf("key:           not in the store\n");
	}
	if (i->has_license && !i->license_st.err) {
		char doc_hex[2 * RP_DOC_ID_LEN + 1];

		rp_hex_encode(doc_hex, i->lic.doc_id, RP_DOC_ID_LEN);
		rp_cli_fmt_time(t, i->lic.issued_at);
		printf("license:       version %u, document %s\n",
		       i->lic.version, doc_hex);
		printf("  owner:       %s\n",
		       i->lic.owner[0] ? i->lic.owner : "-");
		printf("  template:    %s\n",
		       i->lic.template_id[0] ? i->lic.template_id : "-");
		printf("  issued at:   %s\n", t);
		printf("  encoding:    %s\n",
		       i->lic.encoding == RP_ENC_ZSTD ? "zstd" : "none");
		printf("  plaintext:   %llu bytes\n",
		       (unsigned long long)i->lic.plaintext_size);
		rp_key_id_hex(hex, i->lic.sig.key_id);
		printf("  signature:   %s by %.16s, batch of %u (leaf %u, "
		       "path %zu)\n",
		       i->lic.sig.alg == RP_SIG_ED25519 ? "ed25519"
							: "rsa-pss-sha256",
		       hex, i->lic.sig.batch_size, i->lic.sig.leaf_index,
		       i->lic.sig.num_path);
	} else {
		printf("license:       none\n");
	}
	printf("checks:\n");
	text_check("license", &i->license_st);
	text_check("key", &i->key_st);
	text_check("stanza binding", &i->stanza_st);
	text_check("nonce binding", &i->nonce_st);
	text_check("signature", &i->sig_st);
	text_check("header MAC", &i->mac_st);
	if (i->is_tail_checked) {
		text_check("payload end", &i->tail_st);
	} else {
		printf("  %-15s %s\n", "payload end", NOT_CHECKED);
	}
}

int rp_cmd_inspect(struct rp_cli *cli, int argc, char **argv)
{
	static const int allowed[] = { OPT_JSON };
	struct doc_args a;
	struct rp_status st = { 0 };
	struct rp_store *s = NULL;
	struct rp_doc_info *info = NULL;
	const struct rp_status *order[7];
	int rc = parse_doc_opts(cli, "inspect", argc, argv, &a, inspect_help,
				allowed, RP_ARRAY_LEN(allowed));

	if (rc >= 0) {
		return rc;
	}
	if (argc - optind != 1) {
		return rp_cli_usage("inspect", "give exactly one FILE");
	}
	if (rp_cli_open_store(cli, &st, &s)) {
		return rp_cli_error(&st);
	}
	info = calloc(1, sizeof(*info));
	if (!info || rp_doc_inspect(s, &st, argv[optind], info)) {
		if (!info) {
			rp_status_fail(&st, RP_ERR_NOMEM, "out of memory");
		}
		fprintf(stderr, "reprotect: '%s': %s\n", argv[optind],
			rp_status_msg(&st));
		rc = rp_cli_exit(st.err);
		goto out;
	}
	if (a.is_json) {
		print_json(argv[optind], info, s);
	} else {
		print_text(argv[optind], info, s);
	}
	order[0] = &info->license_st;
	order[1] = &info->key_st;
	order[2] = &info->stanza_st;
	order[3] = &info->nonce_st;
	order[4] = &info->sig_st;
	order[5] = &info->mac_st;
	order[6] = &info->tail_st; /* zero (ok) when not checked */
	rc = RP_EXIT_OK;
	for (size_t k = 0; k < RP_ARRAY_LEN(order); k++) {
		if (order[k]->err) {
			rc = rp_cli_exit(order[k]->err);
			break;
		}
	}
out:
	free(info);
	rp_store_free(s);
	return rc;
}
