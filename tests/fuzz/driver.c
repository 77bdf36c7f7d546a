/*
 * driver.c: the regression driver. Runs LLVMFuzzerTestOneInput over every
 * regular file in the directories (or over the files) named on the command
 * line, once each, in name order, and over the empty input; linked with one
 * tests/fuzz/fuzz_<name>.c it replays that corpus in ordinary CTest runs,
 * without libFuzzer [zstd tests/fuzz/regression_driver.c].
 *
 * Each input sits in a heap block of exactly its size, so the sanitizer
 * build catches a read past its end. A harness reports a violated
 * invariant by aborting. Exits 0 when every input ran, 1 when a path
 * cannot be read or no input was found at all (a missing corpus must not
 * pass as green), 2 on usage errors.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* a corpus file larger than this is a mistake */
#define DRIVER_MAX_INPUT (16u << 20)

/* run_file reads `path` into an exact-size heap block and runs it. */
static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f) {
		fprintf(stderr, "driver: cannot open '%s': %s\n", path,
			strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    (unsigned long)n > DRIVER_MAX_INPUT || fseek(f, 0, SEEK_SET)) {
		fprintf(stderr, "driver: cannot size '%s' (or over %u bytes)\n",
			path, DRIVER_MAX_INPUT);
		fclose(f);
		return -1;
	}
	/* at least one byte, so an empty input still has a valid pointer */
	buf = malloc(n ? (size_t)n : 1);
	if (!buf) {
		fprintf(stderr, "driver: out of memory for '%s'\n", path);
		fclose(f);
		return -1;
	}
	if (n && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "driver: cannot read '%s'\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	if (getenv("FUZZ_DRIVER_VERBOSE")) {
		fprintf(stderr, "driver: %s (%ld bytes)\n", path, n);
	}
	(void)LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * run_dir runs every regular file of `dir` whose name does not start
 * with '.'; returns how many, or -1.
 */
static long run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t num = 0, cap = 0;
	long ran = 0;

	if (!d) {
		fprintf(stderr, "driver: cannot open '%s': %s\n", dir,
			strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.') {
			continue;
		}
		if (num == cap) {
			char **p;

			cap = cap ? cap * 2 : 64;
			p = realloc(names, cap * sizeof(*names));
			if (!p) {
				fprintf(stderr, "driver: out of memory\n");
				exit(1);
			}
			names = p;
		}
		names[num] = malloc(strlen(dir) + 1 + strlen(e->d_name) + 1);
		if (!names[num]) {
			fprintf(stderr, "driver: out of memory\n");
			exit(1);
		}
		sprintf(names[num], "%s/%s", dir, e->d_name);
		num++;
	}
	closedir(d);
	if (num) {
		qsort(names, num, sizeof(*names), cmp_names);
	}
	for (size_t i = 0; i < num; i++) {
		struct stat sb;

		if (ran >= 0 && !stat(names[i], &sb) && S_ISREG(sb.st_mode)) {
			ran = run_file(names[i]) ? -1 : ran + 1;
		}
		free(names[i]);
	}
	free(names);
	return ran;
}

int main(int argc, char **argv)
{
	static const uint8_t empty[1];
	long total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	(void)LLVMFuzzerTestOneInput(empty, 0);
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		long n;

		if (stat(argv[i], &sb)) {
			fprintf(stderr, "driver: cannot stat '%s': %s\n",
				argv[i], strerror(errno));
			return 1;
		}
		n = S_ISDIR(sb.st_mode) ? run_dir(argv[i])
					: (run_file(argv[i]) ? -1 : 1);
		if (n < 0) {
			return 1;
		}
		total += n;
	}
	if (!total) {
		fprintf(stderr, "driver: no inputs found\n");
		return 1;
	}
	printf("driver: %ld inputs ran\n", total);
	return 0;
}
