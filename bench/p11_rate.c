/*
 * p11_rate: a PKCS#11 token's own raw RSA private-operation rate, the
 * reference for the engine on that token (scripts/bench_e2e.sh).
 *
 *   p11_rate --module SO --token LABEL [--key LABEL] [--threads N]
 *            [--seconds S]
 *
 * The PIN comes from REPROTECT_PKCS11_PIN. The module is dlopen'ed and
 * initialised with CKF_OS_LOCKING_OK (SoftHSM2 turns its mutexes off
 * without it, and threads then crash). With --key, the RSA private key
 * labelled LABEL on the token is used; without it, an RSA-2048 key pair is
 * generated as session objects. N threads (default 2), each with its own
 * session, call C_DecryptInit + C_Decrypt (CKM_RSA_X_509, 256-byte input)
 * for S seconds (default 2) after a common start; the program prints
 *
 *   p11_rate: threads N seconds S.SSS ops C rate R ops/s
 *
 * and exits 0, or prints the failing call and exits 1 (2: usage).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if __has_include(<p11-kit/pkcs11.h>)
#include <p11-kit/pkcs11.h>
#else
#include <p11-kit-1/p11-kit/pkcs11.h>
#endif

#define MAX_THREADS 64
#define RSA_BYTES 256

struct worker {
	pthread_t tid;
	CK_SESSION_HANDLE session;
	unsigned long done;
	CK_RV rv;
	const char *fn;
};

static CK_FUNCTION_LIST_PTR p11;
static CK_OBJECT_HANDLE key;
static CK_BYTE input[RSA_BYTES];
static pthread_barrier_t start_line;
static atomic_int stop;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ck_fail(const char *fn, CK_RV rv)
{
	fprintf(stderr, "p11_rate: %s: CKR 0x%lx\n", fn, (unsigned long)rv);
	return 1;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	CK_MECHANISM mech = { CKM_RSA_X_509, NULL, 0 };
	CK_BYTE out[RSA_BYTES];
	CK_ULONG out_len;

	pthread_barrier_wait(&start_line);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		w->rv = p11->C_DecryptInit(w->session, &mech, key);
		if (w->rv != CKR_OK) {
			w->fn = "C_DecryptInit";
			break;
		}
		out_len = sizeof(out);
		w->rv = p11->C_Decrypt(w->session, input, sizeof(input), out,
				       &out_len);
		if (w->rv != CKR_OK || out_len != RSA_BYTES) {
			w->fn = "C_Decrypt";
			if (w->rv == CKR_OK) {
				w->rv = CKR_GENERAL_ERROR;
			}
			break;
		}
		w->done++;
	}
	return NULL;
}

/* find_slot: the initialised token labelled `want` (blank padded) */
static int find_slot(const char *want, CK_SLOT_ID *out)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, i;
	size_t len = strlen(want), j;
	CK_RV rv;

	rv = p11->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		return ck_fail("C_GetSlotList", rv);
	}
	for (i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;

		if (p11->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
		    !(ti.flags & CKF_TOKEN_INITIALIZED) || len > sizeof(ti.label)) {
			continue;
		}
		for (j = len; j < sizeof(ti.label) && ti.label[j] == ' '; j++) {
		}
		if (j == sizeof(ti.label) && !memcmp(ti.label, want, len)) {
			*out = slots[i];
			return 0;
		}
	}
	fprintf(stderr, "p11_rate: no initialised token labelled '%s'\n", want);
	return 1;
}

static int find_key(CK_SESSION_HANDLE s, const char *label)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE kt = CKK_RSA;
	CK_ATTRIBUTE tpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_ULONG n = 0;
	CK_RV rv;

	rv = p11->C_FindObjectsInit(s, tpl, 3);
	if (rv != CKR_OK) {
		return ck_fail("C_FindObjectsInit", rv);
	}
	rv = p11->C_FindObjects(s, &key, 1, &n);
	p11->C_FindObjectsFinal(s);
	if (rv != CKR_OK) {
		return ck_fail("C_FindObjects", rv);
	}
	if (n != 1) {
		fprintf(stderr, "p11_rate: no RSA private key labelled '%s'\n",
			label);
		return 1;
	}
	return 0;
}

static int gen_key(CK_SESSION_HANDLE s)
{
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_ULONG bits = 2048;
	CK_BYTE e[] = { 1, 0, 1 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_MODULUS_BITS, &bits, sizeof(bits) },
		{ CKA_PUBLIC_EXPONENT, e, sizeof(e) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
	};
	CK_OBJECT_HANDLE pub_h;
	CK_RV rv;

	rv = p11->C_GenerateKeyPair(s, &mech, pub, 4, priv, 5, &pub_h, &key);
	return rv == CKR_OK ? 0 : ck_fail("C_GenerateKeyPair", rv);
}

static void usage(void)
{
	fprintf(stderr, "usage: p11_rate --module SO --token LABEL "
			"[--key LABEL] [--threads N] [--seconds S]\n"
			"(PIN in REPROTECT_PKCS11_PIN)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *module = NULL, *token = NULL, *key_label = NULL;
	const char *pin = getenv("REPROTECT_PKCS11_PIN");
	CK_C_INITIALIZE_ARGS init_args;
	CK_C_GetFunctionList get_list;
	CK_SESSION_HANDLE main_s;
	CK_SLOT_ID slot;
	struct worker w[MAX_THREADS];
	unsigned long total = 0;
	int threads = 2, i, rc = 1;
	double seconds = 2.0, t0, t1;
	void *lib;
	CK_RV rv;

	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc) {
			usage();
		}
		if (!strcmp(argv[i], "--module")) {
			module = argv[++i];
		} else if (!strcmp(argv[i], "--token")) {
			token = argv[++i];
		} else if (!strcmp(argv[i], "--key")) {
			key_label = argv[++i];
		} else if (!strcmp(argv[i], "--threads")) {
			char *end;
			long v = strtol(argv[++i], &end, 10);

			threads = (*end || v < 1 || v > MAX_THREADS) ? 0 : (int)v;
		} else if (!strcmp(argv[i], "--seconds")) {
			char *end;

			seconds = strtod(argv[++i], &end);
			if (*end || !(seconds > 0 && seconds < 3600)) {
				seconds = 0;
			}
		} else {
			usage();
		}
	}
	if (!module || !token || !pin || threads < 1 ||
	    threads > MAX_THREADS || seconds <= 0) {
		usage();
	}

	lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "p11_rate: %s\n", dlerror());
		return 1;
	}
	*(void **)&get_list = dlsym(lib, "C_GetFunctionList");
	if (!get_list) {
		fprintf(stderr, "p11_rate: no C_GetFunctionList in %s\n",
			module);
		return 1;
	}
	rv = get_list(&p11);
	if (rv != CKR_OK) {
		return ck_fail("C_GetFunctionList", rv);
	}
	memset(&init_args, 0, sizeof(init_args));
	init_args.flags = CKF_OS_LOCKING_OK;
	rv = p11->C_Initialize(&init_args);
	if (rv != CKR_OK) {
		return ck_fail("C_Initialize", rv);
	}
	if (find_slot(token, &slot)) {
		goto out;
	}
	rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
				NULL, &main_s);
	if (rv != CKR_OK) {
		ck_fail("C_OpenSession", rv);
		goto out;
	}
	rv = p11->C_Login(main_s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		ck_fail("C_Login", rv);
		goto out;
	}
	if (key_label ? find_key(main_s, key_label) : gen_key(main_s)) {
		goto out;
	}
	/* below the modulus: a leading zero byte */
	for (i = 1; i < RSA_BYTES; i++) {
		input[i] = (CK_BYTE)(i * 131 + 7);
	}

	memset(w, 0, sizeof(w));
	for (i = 0; i < threads; i++) {
		rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL,
					&w[i].session);
		if (rv != CKR_OK) {
			ck_fail("C_OpenSession", rv);
			goto out;
		}
	}
	if (pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1)) {
		fprintf(stderr, "p11_rate: pthread_barrier_init failed\n");
		goto out;
	}
	for (i = 0; i < threads; i++) {
		if (pthread_create(&w[i].tid, NULL, run, &w[i])) {
			fprintf(stderr, "p11_rate: pthread_create failed\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&start_line);
	t0 = now();
	{
		struct timespec d;

		d.tv_sec = (time_t)seconds;
		d.tv_nsec = (long)((seconds - (double)d.tv_sec) * 1e9);
		while (nanosleep(&d, &d)) {
		}
	}
	atomic_store(&stop, 1);
	rc = 0;
	for (i = 0; i < threads; i++) {
		pthread_join(w[i].tid, NULL);
		total += w[i].done;
		if (w[i].fn) {
			ck_fail(w[i].fn, w[i].rv);
			rc = 1;
		}
	}
	/* each thread stops after its operation in flight: end at the join */
	t1 = now();
	pthread_barrier_destroy(&start_line);
	if (!rc) {
		printf("p11_rate: threads %d seconds %.3f ops %lu rate %.1f "
		       "ops/s\n",
		       threads, t1 - t0, total, (double)total / (t1 - t0));
	}
out:
	p11->C_Finalize(NULL);
	return rc;
}
