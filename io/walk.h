#ifndef RP_IO_WALK_H
#define RP_IO_WALK_H

#include <stddef.h>
#include <sys/stat.h>

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct rp_walk streams the regular files under a list of roots, one entry
 * per rp_walk_next call, for the bulk engine's walker thread. It holds one
 * open directory per level of the current path and never lists a whole
 * directory or tree, so its memory and file descriptors grow with the
 * depth (at most RP_WALK_MAX_DEPTH), not with the number of files. The
 * order is readdir's: unsorted, not deterministic across file systems.
 *
 * Rules:
 * - Symbolic links inside a root are never followed: each is a SKIP.
 *   A root that is itself a symlink is followed once if it names a
 *   directory (the user named it; like find -H); a root symlink to
 *   anything else is refused by rp_walk_new, because the engine replaces
 *   files by rename and would replace the link, not its target.
 * - FIFOs, sockets and devices are a SKIP and are never opened.
 * - A directory whose (st_dev, st_ino) is already on the current path,
 *   as through a bind mount, is a SKIP "directory loop".
 * - The engine's temporary files, regular files named
 *   ".<name>.rp-tmp-<12 lower-case hex>" (see afile.h), are never a FILE.
 *   They are passed over silently, or reported as a SKIP with
 *   RP_WALK_REPORT_TMP so that leftovers of a killed run can be removed.
 *   Anything else with such a name is treated as its type says.
 * - A path of PATH_MAX bytes or more is a SKIP, reported in full; such a
 *   directory is not entered.
 * - An object named as a root is reported from that root only: roots that
 *   overlap (a root inside another, the same root twice, a file root
 *   inside a directory root) yield each file once.
 * - Nothing is reported for directories themselves, except as a SKIP, or
 *   as RP_WALK_DIR when asked for.
 *
 * One thread at a time; not async-signal-safe.
 */
struct rp_walk;

/* rp_walk_new flags */
enum rp_walk_new_flags {
	/* report leftover temporary files as SKIP (RP_WALK_SKIP_TMP) */
	RP_WALK_REPORT_TMP = 1 << 0,
	/* report each directory as it is entered (RP_WALK_DIR) */
	RP_WALK_REPORT_DIRS = 1 << 1,
};

/* Directories open at once, the root counting as one; deeper is a SKIP. */
#define RP_WALK_MAX_DEPTH 256

enum rp_walk_kind {
	RP_WALK_END = 0,  /* the walk is over; no other field is set */
	RP_WALK_FILE = 1, /* a regular file */
	RP_WALK_SKIP = 2, /* not walked: see why and reason */
	RP_WALK_DIR = 3,  /* a directory entered (RP_WALK_REPORT_DIRS); its
			     dir_fd is the directory itself */
};

/* Why an entry is a SKIP; stable values, for the engine to act on. */
enum rp_walk_skip {
	RP_WALK_SKIP_NONE = 0,
	RP_WALK_SKIP_SYMLINK = 1,    /* "symlink" */
	RP_WALK_SKIP_SPECIAL = 2,    /* "special file": FIFO, socket, device */
	RP_WALK_SKIP_LOOP = 3,	     /* "directory loop" */
	RP_WALK_SKIP_TOO_LONG = 4,   /* "path too long": PATH_MAX or more */
	RP_WALK_SKIP_TOO_DEEP = 5,   /* "too deep": see RP_WALK_MAX_DEPTH */
	RP_WALK_SKIP_UNREADABLE = 6, /* "unreadable directory: <strerror>" */
	RP_WALK_SKIP_TMP = 7,	     /* "temporary file" (a regular file) */
	RP_WALK_SKIP_NOSTAT = 8,     /* "cannot stat: <strerror>" */
	RP_WALK_SKIP_CHANGED = 9,    /* "changed during the walk" */
};

/*
 * struct rp_walk_entry is one result of rp_walk_next. Its strings belong
 * to the walk and stay valid until the next rp_walk_next or rp_walk_free.
 */
struct rp_walk_entry {
	enum rp_walk_kind kind;
	enum rp_walk_skip why; /* SKIP only */
	const char *path;      /* borrowed: the root joined with rel */
	/*
	 * borrowed: the path below the root it came from; "" for a SKIP of a
	 * root directory itself; for a root that is a file, its last
	 * component
	 */
	const char *rel;
	size_t root;	    /* index of that root in rp_walk_new's roots */
	struct stat sb;	    /* lstat result; zero for RP_WALK_SKIP_NOSTAT */
	const char *reason; /* borrowed: SKIP only, for people */
	/*
	 * The folder holding the entry, opened from its root one component
	 * at a time without following a link (a root's own folder: as the
	 * user named it), and the entry's name in it: the engine opens,
	 * creates, renames and syncs through these, never through `path`,
	 * which a folder swapped for a link could redirect. dir_fd is
	 * borrowed (valid until the next rp_walk_next; dup it to keep it),
	 * -1 for a SKIP of a root itself. dir_serial changes whenever dir_fd
	 * stands for another folder than in the previous entry.
	 */
	int dir_fd;
	const char *name;
	unsigned long dir_serial;
};

/*
 * rp_walk_new prepares a walk of `roots` (each a directory or a regular
 * file; copied) with `flags` from enum rp_walk_new_flags. It checks every
 * root now and opens them when their turn comes; relative roots are
 * resolved against the working directory at that time. A trailing '/' on
 * a root is dropped. Returns RP_OK, RP_ERR_USAGE for no roots, unknown
 * flags, an empty or too long root, or a root that is neither a file nor
 * a directory (nor a symlink to a directory), RP_ERR_IO if a root cannot
 * be examined, or RP_ERR_NOMEM. The caller frees *out with rp_walk_free.
 */
RP_MUST_CHECK enum rp_err rp_walk_new(struct rp_walk **out,
				      struct rp_status *st,
				      const char *const *roots,
				      size_t num_roots, unsigned flags);

/*
 * rp_walk_next fills `out` with the next FILE or SKIP, or with kind
 * RP_WALK_END once every root is done (and on every call after that).
 * Problems with single entries and directories are SKIP entries; the walk
 * goes on past them. A file or directory that vanishes during the walk is
 * passed over silently. Returns RP_OK, or RP_ERR_IO (EMFILE, ENFILE) or
 * RP_ERR_NOMEM when the walk cannot go on: it then fails for good, and
 * the caller frees it.
 */
RP_MUST_CHECK enum rp_err rp_walk_next(struct rp_walk *w, struct rp_status *st,
				       struct rp_walk_entry *out);

/* rp_walk_free closes every directory of `w` and frees it; NULL is fine. */
void rp_walk_free(struct rp_walk *w);

#ifdef __cplusplus
}
#endif
#endif
