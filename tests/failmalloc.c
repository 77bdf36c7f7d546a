/*
 * failmalloc.so: an LD_PRELOAD shim that makes the allocator fail on
 * purpose, to drive a whole reprotect process (and the libraries in it:
 * libcrypto, libzstd, libc's own stdio and opendir) through its
 * out-of-memory paths. Release builds only: the sanitizers bring their own
 * allocator. Every malloc, calloc, realloc (to a nonzero size),
 * posix_memalign, aligned_alloc, memalign, valloc and pvalloc call counts,
 * across threads, from the first one the process makes. The environment:
 *
 *   RP_FAILMALLOC_NTH=N    the Nth call (1-based) fails, only that one
 *   RP_FAILMALLOC_FROM=N   every call from the Nth on fails (exhaustion)
 *   RP_FAILMALLOC_REPORT=FILE  at exit, append "calls=C failed=F" to FILE
 *   RP_FAILMALLOC_ABORT=1  abort() at the first failing call instead, for
 *                          a core file that shows who allocated
 *
 * A failing call returns NULL with errno ENOMEM, as the real one does.
 * scripts/oom_sweep.sh steps N over a command.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h> /* memalign, pvalloc */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* glibc's own allocator, under the names it exports for shims like this */
/* NOLINTBEGIN(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);
void __libc_free(void *p);
/* NOLINTEND(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */

static unsigned long fm_nth, fm_from;
static const char *fm_report;
static int fm_is_abort;
static int fm_is_init;
static unsigned long fm_calls, fm_failed;

static unsigned long env_ulong(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 10) : 0;
}

/*
 * The loader resolves getenv before any allocation of ours can happen; a
 * constructor would run too late for libraries initialised before it.
 */
static void fm_init(void)
{
	if (__atomic_load_n(&fm_is_init, __ATOMIC_ACQUIRE)) {
		return;
	}
	fm_nth = env_ulong("RP_FAILMALLOC_NTH");
	fm_from = env_ulong("RP_FAILMALLOC_FROM");
	fm_report = getenv("RP_FAILMALLOC_REPORT");
	fm_is_abort = env_ulong("RP_FAILMALLOC_ABORT") != 0;
	__atomic_store_n(&fm_is_init, 1, __ATOMIC_RELEASE);
}

/* should_fail counts one allocation call and says whether it fails */
static int should_fail(void)
{
	unsigned long n;

	fm_init();
	n = __atomic_add_fetch(&fm_calls, 1, __ATOMIC_RELAXED);
	if ((fm_nth && n == fm_nth) || (fm_from && n >= fm_from)) {
		__atomic_add_fetch(&fm_failed, 1, __ATOMIC_RELAXED);
		if (fm_is_abort) {
			abort();
		}
		errno = ENOMEM;
		return 1;
	}
	return 0;
}

void *malloc(size_t n)
{
	return should_fail() ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	return should_fail() ? NULL : __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	if (p && !n) {
		return __libc_realloc(p, n); /* a free: cannot fail */
	}
	return should_fail() ? NULL : __libc_realloc(p, n);
}

void free(void *p)
{
	__libc_free(p);
}

void *memalign(size_t align, size_t n)
{
	return should_fail() ? NULL : __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	return memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	if (align < sizeof(void *) || (align & (align - 1))) {
		return EINVAL;
	}
	p = memalign(align, n);
	if (!p) {
		return ENOMEM;
	}
	*out = p;
	return 0;
}

void *valloc(size_t n)
{
	return memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

void *pvalloc(size_t n)
{
	const size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return memalign(pg, (n + pg - 1) / pg * pg);
}

__attribute__((destructor)) static void fm_fini(void)
{
	char line[96];
	int fd, len;

	fm_init();
	if (!fm_report || !*fm_report) {
		return;
	}
	len = snprintf(line, sizeof(line), "calls=%lu failed=%lu\n",
		       __atomic_load_n(&fm_calls, __ATOMIC_RELAXED),
		       __atomic_load_n(&fm_failed, __ATOMIC_RELAXED));
	fd = open(fm_report, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0 && len > 0) {
		(void)!write(fd, line, (size_t)len);
	}
	if (fd >= 0) {
		close(fd);
	}
}
