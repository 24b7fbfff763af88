/*
 * repo_stream_car - move repo_stream repos around as CAR files.
 *
 *   repo_stream_car export  [OPTION]... DID [FILE]   a repo's CAR (full, or --since a rev)
 *   repo_stream_car import  [OPTION]... FILE         a CAR into the database (--did-key)
 *   repo_stream_car backup  [OPTION]... DIR          every repo, one snapshot, into DIR
 *   repo_stream_car restore [OPTION]... DIR          every repo of a backup, back in
 *   repo_stream_car list    [OPTION]...              the repos, in DID order
 *
 * A client of the SQL functions export_repo, import_repo_lo and list_repos,
 * built with libpq only.  Exports stream: export_repo is called in a select
 * list in single-row mode, so each 1 MiB chunk is written to the file as the
 * server makes it and memory stays flat.  Imports go through a large object
 * (any size), written and imported in one transaction.  Backups run in one
 * REPEATABLE READ transaction, so every CAR is of the same snapshot, and
 * write DIR/manifest.tsv (DID, file, rev, seq, the did:key that signed the
 * export, bytes, status), which restore reads.  On a terminal, progress
 * goes to stderr.  See docs/snapshots.md.
 *
 * Nothing the server returns and nothing in a manifest is trusted: DIDs,
 * file names, revs, keys and counts are checked (car_manifest.c) before
 * they name a file, go into a manifest or are shown; files are opened
 * inside the backup directory only (openat, no symlinks), must be regular
 * files and are read up to the size they had when opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "car_manifest.h"

#define CLI_VERSION "0.1.0"
#define LO_WRITE_BYTES (1024 * 1024)
#define INV_WRITE 0x00020000
#define INV_READ 0x00040000
#define PATH_MAX_SHOWN 4400

static const char *progname = "repo_stream_car";

/* connection options */
static const char *opt_dbname;
static const char *opt_host;
static const char *opt_port;
static const char *opt_user;
static int	opt_password = 0;	/* 0 ask when needed, 1 always ask, -1 never */
static bool opt_quiet = false;
static int	opt_progress = -1;	/* -1: on a terminal */

static void
fail(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: error: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
say(const char *fmt,...)
{
	va_list		ap;

	if (opt_quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void
usage(FILE *to)
{
	fprintf(to,
			"%s moves repo_stream repos around as CAR files (atproto repository export).\n"
			"\n"
			"Usage:\n"
			"  %s export  [OPTION]... DID [FILE]   write the repo's CAR to FILE (default DID.car; - for stdout)\n"
			"  %s import  [OPTION]... FILE         import a CAR; prints the repo's new did:key\n"
			"  %s backup  [OPTION]... DIR          every repo of the database into DIR, one snapshot\n"
			"  %s restore [OPTION]... DIR          import every repo of a backup directory\n"
			"  %s list    [OPTION]...              list the repos (DID, rev, seq, status)\n"
			"\n"
			"Options:\n"
			"  -s, --since=REV        export: only what changed after REV (a diff)\n"
			"  -k, --did-key=DIDKEY   import: the did:key that signed the CAR (repo_key() where it was\n"
			"                         exported; a backup's manifest has it)\n"
			"  -q, --quiet            no progress and no messages, only errors\n"
			"  -P, --progress         show progress even when stderr is not a terminal\n"
			"      --no-progress      never show progress\n"
			"  -V, --version          print the version and exit\n"
			"  -?, --help             show this help and exit\n"
			"\n"
			"Connection options (and the usual PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD...):\n"
			"  -d, --dbname=DBNAME    database name or connection string\n"
			"  -h, --host=HOSTNAME    database server host or socket directory\n"
			"  -p, --port=PORT        database server port\n"
			"  -U, --username=NAME    database user name\n"
			"  -w, --no-password      never prompt for a password\n"
			"  -W, --password         always prompt for a password\n"
			"\n"
			"export needs the role repo_stream_reader; import and restore need repo_stream_admin.\n",
			progname, progname, progname, progname, progname, progname);
}

/* ------------------------------------------------------------ database */

static PGresult *
run_checked(PGconn *conn, const char *sql, ExecStatusType want)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != want)
		fail("%s", PQerrorMessage(conn));
	return res;
}

static PGconn *
connect_db(void)
{
	const char *keys[8];
	const char *vals[8];
	int			n = 0;
	PGconn	   *conn;
	char	   *password = NULL;

	for (;;)
	{
		n = 0;
		if (opt_host)
			keys[n] = "host", vals[n++] = opt_host;
		if (opt_port)
			keys[n] = "port", vals[n++] = opt_port;
		if (opt_user)
			keys[n] = "user", vals[n++] = opt_user;
		if (password)
			keys[n] = "password", vals[n++] = password;
		keys[n] = "fallback_application_name", vals[n++] = progname;
		/* last, so that a connection string in it can override the rest */
		if (opt_dbname)
			keys[n] = "dbname", vals[n++] = opt_dbname;
		keys[n] = NULL, vals[n] = NULL;
		if (opt_password == 1 && password == NULL)
			password = strdup(getpass("Password: "));
		else
		{
			conn = PQconnectdbParams(keys, vals, 1);
			if (PQstatus(conn) == CONNECTION_BAD && PQconnectionNeedsPassword(conn) &&
				password == NULL && opt_password == 0 && isatty(STDIN_FILENO))
			{
				PQfinish(conn);
				password = strdup(getpass("Password: "));
				continue;
			}
			break;
		}
	}
	if (PQstatus(conn) == CONNECTION_BAD)
		fail("%s", PQerrorMessage(conn));
	free(password);
	/* our queries name pg_catalog's objects: no look-alike may come first */
	PQclear(run_checked(conn, "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)",
						PGRES_TUPLES_OK));
	return conn;
}

static PGresult *
run(PGconn *conn, const char *sql, int n, const char *const *params, ExecStatusType want)
{
	PGresult   *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != want)
		fail("%s", PQerrorMessage(conn));
	return res;
}

static void
exec_ok(PGconn *conn, const char *sql)
{
	PQclear(run(conn, sql, 0, NULL, PGRES_COMMAND_OK));
}

/*
 * A text value of a server's row, never NULL: the server is not trusted to
 * return what the functions promise (an old or foreign "repo_stream").
 */
static const char *
server_value(PGresult *res, int row, int col, const char *what)
{
	if (col >= PQnfields(res) || row >= PQntuples(res))
		fail("the server returned no %s", what);
	if (PQgetisnull(res, row, col))
		fail("the server returned NULL for %s", what);
	return PQgetvalue(res, row, col);
}

/* Fail unless value (a server's) passes ok; shows it safely. */
static void
server_check(bool ok, const char *what, const char *value)
{
	char		shown[CAR_SHOWN_SIZE];

	if (!ok)
		fail("the server returned an invalid %s \"%s\"; refusing to go on", what,
			 car_shown(value, strlen(value), shown));
}

/*
 * Open a CAR to read: a regular file (not a device, FIFO or directory),
 * through no symlink when inside a backup directory (dirfd >= 0).  Returns
 * the descriptor and its size, or -1 with why.
 */
static int
open_car(int dirfd, const char *path, struct stat *st, char *why, size_t whylen)
{
	int			fd = dirfd >= 0
		? openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
		: open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
	{
		snprintf(why, whylen, "%s", errno == ELOOP ? "it is a symbolic link" : strerror(errno));
		return -1;
	}
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))
	{
		snprintf(why, whylen, "not a regular file");
		close(fd);
		return -1;
	}
	return fd;
}

/* Create (or replace) a file of the backup directory, through no symlink. */
static FILE *
create_in(int dirfd, const char *dir, const char *name)
{
	int			fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
							0600);
	struct stat st;
	FILE	   *f;

	if (fd < 0)
		fail("cannot create \"%s/%s\": %s", dir, name, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		fail("cannot create \"%s/%s\": not a regular file", dir, name);
	if ((f = fdopen(fd, "wb")) == NULL)
		fail("cannot create \"%s/%s\": %s", dir, name, strerror(errno));
	return f;
}

/* ------------------------------------------------------------ progress */

typedef struct Progress
{
	bool		on;
	struct timespec last;
	char		label[128];
} Progress;

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void
progress_init(Progress *p, const char *label)
{
	p->on = !opt_quiet && (opt_progress == 1 || (opt_progress == -1 && isatty(STDERR_FILENO)));
	snprintf(p->label, sizeof(p->label), "%s", label);
	p->last.tv_sec = 0;
}

/* A bar when the total is known, a counter when it is not. */
static void
progress_show(Progress *p, double done, double total, const char *unit, const char *extra, bool force)
{
	static double last = 0;
	double		t = now_s();
	char		bar[41];

	if (!p->on || (!force && t - last < 0.1))
		return;
	last = t;
	if (total > 0)
	{
		int			fill = (int) (40 * (done / total));

		if (fill > 40)
			fill = 40;
		memset(bar, '#', fill);
		memset(bar + fill, '.', 40 - fill);
		bar[40] = '\0';
		fprintf(stderr, "\r%s [%s] %3.0f%% %.1f/%.1f %s%s\033[K", p->label, bar, 100.0 * done / total,
				done, total, unit, extra ? extra : "");
	}
	else
		fprintf(stderr, "\r%s %.1f %s%s\033[K", p->label, done, unit, extra ? extra : "");
}

static void
progress_done(Progress *p)
{
	if (p->on)
		fputc('\n', stderr);
}

/* --------------------------------------------------------------- export */

static uint64_t
be64(const char *p)
{
	uint64_t	v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | (unsigned char) p[i];
	return v;
}

/*
 * Stream export_repo(did, since) into out; returns the bytes written, the
 * export's seq and rev (rev_out: TID_LEN + 1 bytes).
 */
static uint64_t
export_to(PGconn *conn, const char *did, const char *since, FILE *out, Progress *prog,
		  long long *seq_out, char *rev_out)
{
	const char *params[2] = {did, since};
	PGresult   *res;
	uint64_t	bytes = 0;
	uint64_t	rows = 0;
	bool		failed = false;
	char		errbuf[1024] = "";

	/* in the select list, rows leave the server as they are made */
	if (!PQsendQueryParams(conn,
						   "SELECT (x).seq, (x).rev, (x).chunk"
						   "  FROM (SELECT repo_stream.export_repo($1, $2) AS x) s",
						   2, NULL, params, NULL, NULL, 1))
		fail("%s", PQerrorMessage(conn));
	if (!PQsetSingleRowMode(conn))
		fail("cannot stream the export: %s", PQerrorMessage(conn));
	while ((res = PQgetResult(conn)) != NULL)
	{
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_SINGLE_TUPLE)
		{
			int			len;
			long long	seq;
			char		shown[CAR_SHOWN_SIZE];

			/* binary results: seq an int8 (8 bytes), rev a TID, chunk bytes */
			if (PQnfields(res) != 3 || PQgetisnull(res, 0, 0) || PQgetlength(res, 0, 0) != 8)
				fail("the server returned no valid seq with the export of \"%s\"", did);
			seq = (long long) be64(PQgetvalue(res, 0, 0));
			if (seq < 0)
				fail("the server returned a negative seq (%lld) with the export of \"%s\"", seq, did);
			if (PQgetisnull(res, 0, 1) || !tid_valid(PQgetvalue(res, 0, 1), PQgetlength(res, 0, 1)))
				fail("the server returned an invalid rev \"%s\" with the export of \"%s\"",
					 PQgetisnull(res, 0, 1) ? "NULL"
					 : car_shown(PQgetvalue(res, 0, 1), PQgetlength(res, 0, 1), shown), did);
			if (PQgetisnull(res, 0, 2))
				fail("the server returned a NULL chunk with the export of \"%s\"", did);
			*seq_out = seq;
			snprintf(rev_out, TID_LEN + 1, "%s", PQgetvalue(res, 0, 1));
			len = PQgetlength(res, 0, 2);
			if (fwrite(PQgetvalue(res, 0, 2), 1, len, out) != (size_t) len)
				fail("cannot write the CAR: %s", strerror(errno));
			bytes += len;
			rows++;
			progress_show(prog, bytes / 1048576.0, 0, "MB", NULL, false);
		}
		else if (st != PGRES_TUPLES_OK)
		{
			failed = true;
			snprintf(errbuf, sizeof(errbuf), "%s", PQresultErrorMessage(res));
		}
		PQclear(res);
	}
	if (failed)
		fail("%s", errbuf);
	if (rows == 0)
		fail("the server returned no CAR for \"%s\"", did);
	return bytes;
}

static int
cmd_export(int argc, char **argv, const char *since)
{
	const char *did,
			   *path;
	char		defpath[2100];
	FILE	   *out;
	PGconn	   *conn;
	Progress	prog;
	long long	seq = 0;
	char		rev[TID_LEN + 1] = "";
	uint64_t	bytes;
	bool		to_stdout;

	if (argc < 1 || argc > 2)
		fail("export takes a DID and an optional file (try \"%s --help\")", progname);
	did = argv[0];
	if (!did_valid(did, strlen(did)))
		fail("invalid DID \"%s\"", did);
	if (argc == 2)
		path = argv[1];
	else
	{
		/* DID.car in the current directory: no "/" or ".." in it */
		if (!car_did_file_ok(did, strlen(did)))
			fail("\"%s\" cannot name a file: give the file to write", did);
		snprintf(defpath, sizeof(defpath), "%s.car", did);
		path = defpath;
	}
	to_stdout = strcmp(path, "-") == 0;
	conn = connect_db();
	out = to_stdout ? stdout : fopen(path, "wb");
	if (out == NULL)
		fail("cannot open \"%s\": %s", path, strerror(errno));
	progress_init(&prog, did);
	bytes = export_to(conn, did, since, out, &prog, &seq, rev);
	progress_show(&prog, bytes / 1048576.0, 0, "MB", NULL, true);
	progress_done(&prog);
	if (!to_stdout && fclose(out) != 0)
		fail("cannot write \"%s\": %s", path, strerror(errno));
	say("%s: %s%s%s, rev %s, seq %lld, %llu bytes -> %s\n", progname, did, since ? " since " : "",
		since ? since : "", rev, seq, (unsigned long long) bytes, to_stdout ? "stdout" : path);
	PQfinish(conn);
	return 0;
}

/* --------------------------------------------------------------- import */

/*
 * Import one CAR inside the caller's transaction: fd (closed here) is path
 * (named in messages), size bytes when it was opened; exactly that much is
 * read.  Returns the new did:key (malloc'd).  When the file or the server
 * refuses: exits, or with soft prints the error and returns NULL (the
 * transaction is then to be rolled back).
 */
static char *
import_file(PGconn *conn, int fd, const char *path, off_t size, Progress *prog, const char *did_key,
			bool soft)
{
	Oid			oid;
	int			lo;
	char	   *buf;
	ssize_t		n;
	off_t		done = 0;
	char		oidtext[16];
	const char *params[2];
	PGresult   *res;
	char	   *key;
	char		extra;

	oid = lo_creat(conn, INV_READ | INV_WRITE);
	if (oid == 0)
		fail("cannot create a large object: %s", PQerrorMessage(conn));
	lo = lo_open(conn, oid, INV_WRITE);
	if (lo < 0)
		fail("cannot open the large object: %s", PQerrorMessage(conn));
	buf = malloc(LO_WRITE_BYTES);
	if (buf == NULL)
		fail("out of memory");
	while (done < size)
	{
		size_t		want = size - done < LO_WRITE_BYTES ? (size_t) (size - done) : LO_WRITE_BYTES;

		n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("cannot read \"%s\": %s", path, strerror(errno));
		if (n == 0)
			break;
		if (lo_write(conn, lo, buf, n) != (int) n)
			fail("cannot write the large object: %s", PQerrorMessage(conn));
		done += n;
		progress_show(prog, done / 1048576.0, size / 1048576.0, "MB", " uploaded", false);
	}
	free(buf);
	/* exactly the size it had when opened: not a file that changes meanwhile */
	if (done != size || read(fd, &extra, 1) != 0)
	{
		close(fd);
		progress_done(prog);
		if (!soft)
			fail("\"%s\" changed while it was read", path);
		fprintf(stderr, "%s: error: \"%s\" changed while it was read\n", progname, path);
		return NULL;
	}
	close(fd);
	lo_close(conn, lo);
	progress_show(prog, done / 1048576.0, size / 1048576.0, "MB", " uploaded, checking and writing", true);

	snprintf(oidtext, sizeof(oidtext), "%u", oid);
	params[0] = oidtext;
	params[1] = did_key;
	res = PQexecParams(conn, "SELECT repo_stream.import_repo_lo($1::pg_catalog.oid, $2)", 2, NULL, params,
					   NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		progress_done(prog);
		if (!soft)
			fail("import of \"%s\" failed: %s", path, PQerrorMessage(conn));
		fprintf(stderr, "%s: error: import of \"%s\" failed: %s", progname, path, PQerrorMessage(conn));
		PQclear(res);
		return NULL;
	}
	/* one row holding the repo's new did:key, or the server is not repo_stream */
	if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0) ||
		!car_did_key_ok(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0)))
	{
		progress_done(prog);
		if (!soft)
			fail("import of \"%s\": the server returned no valid did:key", path);
		fprintf(stderr, "%s: error: import of \"%s\": the server returned no valid did:key\n", progname, path);
		PQclear(res);
		return NULL;
	}
	key = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQclear(run(conn, "SELECT pg_catalog.lo_unlink($1::pg_catalog.oid)", 1, params, PGRES_TUPLES_OK));
	return key;
}

static int
cmd_import(int argc, char **argv, const char *did_key)
{
	PGconn	   *conn;
	Progress	prog;
	char	   *key;
	struct stat st;
	int			fd;
	char		why[256];

	if (argc != 1)
		fail("import takes one file (try \"%s --help\")", progname);
	if (did_key == NULL)
		fail("import needs --did-key, the did:key that signed the CAR");
	if (!car_did_key_ok(did_key, strlen(did_key)))
		fail("invalid --did-key \"%s\" (did:key:z...)", did_key);
	if ((fd = open_car(-1, argv[0], &st, why, sizeof(why))) < 0)
		fail("cannot read \"%s\": %s", argv[0], why);
	conn = connect_db();
	progress_init(&prog, argv[0]);
	exec_ok(conn, "BEGIN");
	key = import_file(conn, fd, argv[0], st.st_size, &prog, did_key, false);
	exec_ok(conn, "COMMIT");
	progress_done(&prog);
	say("%s: imported %s; the repo's new signing key:\n", progname, argv[0]);
	printf("%s\n", key);
	free(key);
	PQfinish(conn);
	return 0;
}

/* ---------------------------------------------------------- backup, list */

typedef struct Repo
{
	char	   *did;
	char	   *status;
	char	   *did_key;
} Repo;

/*
 * The DIDs a listing returned so far (open addressing): a server that
 * repeats one (two repos would write one file, or pages that never end)
 * is refused.
 */
typedef struct DidSet
{
	const char **slot;
	size_t		cap;
	size_t		n;
} DidSet;

static size_t
did_hash(const char *s)
{
	uint64_t	h = 14695981039346656037ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 1099511628211ULL;
	return (size_t) h;
}

/* Add did (kept, not copied); false if it was there. */
static bool
didset_add(DidSet *set, const char *did)
{
	size_t		i;

	if ((set->n + 1) * 2 > set->cap)
	{
		DidSet		grown = {NULL, set->cap ? set->cap * 2 : 1024, 0};

		grown.slot = calloc(grown.cap, sizeof(char *));
		if (grown.slot == NULL)
			fail("out of memory");
		for (size_t j = 0; j < set->cap; j++)
			if (set->slot[j])
				(void) didset_add(&grown, set->slot[j]);
		free(set->slot);
		*set = grown;
	}
	for (i = did_hash(did) & (set->cap - 1); set->slot[i]; i = (i + 1) & (set->cap - 1))
		if (strcmp(set->slot[i], did) == 0)
			return false;
	set->slot[i] = did;
	set->n++;
	return true;
}

/*
 * Every repo, page by page, in the current transaction's snapshot.  Each
 * DID is checked before it names a file (valid, usable as a file name),
 * and may come only once.
 */
static Repo *
list_all(PGconn *conn, int *count)
{
	Repo	   *repos = NULL;
	int			n = 0,
				cap = 0;
	char	   *after = NULL;
	DidSet		seen = {NULL, 0, 0};

	for (;;)
	{
		const char *params[1] = {after};
		PGresult   *res = run(conn,
							  "SELECT l.did, l.status, r.did_key"
							  "  FROM repo_stream.list_repos($1, 1000) WITH ORDINALITY"
							  "       AS l(did, head_cid, rev, seq, status, n)"
							  "  JOIN repo_stream.repos r ON r.did OPERATOR(pg_catalog.=) l.did"
							  " ORDER BY l.n",
							  1, params, PGRES_TUPLES_OK);
		int			rows = PQntuples(res);

		for (int i = 0; i < rows; i++)
		{
			const char *did = server_value(res, i, 0, "a DID");
			const char *status = server_value(res, i, 1, "a status");
			const char *key = server_value(res, i, 2, "a did:key");

			server_check(car_did_file_ok(did, strlen(did)), "DID (it names a file of the backup)", did);
			server_check(car_status_ok(status, strlen(status)), "status", status);
			server_check(car_did_key_ok(key, strlen(key)), "did:key", key);
			if (n == cap)
			{
				cap = cap ? cap * 2 : 256;
				repos = realloc(repos, cap * sizeof(Repo));
				if (repos == NULL)
					fail("out of memory");
			}
			repos[n].did = strdup(did);
			repos[n].status = strdup(status);
			repos[n].did_key = strdup(key);
			server_check(didset_add(&seen, repos[n].did), "DID (listed twice)", did);
			n++;
		}
		free(after);
		after = rows > 0 ? strdup(repos[n - 1].did) : NULL;
		PQclear(res);
		if (rows < 1000)
			break;
	}
	free(after);
	free(seen.slot);
	*count = n;
	return repos;
}

static int
cmd_list(int argc, char **argv)
{
	PGconn	   *conn;
	char	   *after = NULL;
	DidSet		seen = {NULL, 0, 0};

	(void) argv;
	if (argc != 0)
		fail("list takes no arguments");
	conn = connect_db();
	for (;;)
	{
		const char *params[1] = {after};
		PGresult   *res = run(conn, "SELECT did, rev, seq, status FROM repo_stream.list_repos($1, 1000)",
							  1, params, PGRES_TUPLES_OK);
		int			rows = PQntuples(res);

		/* what a server sends is checked before it reaches the terminal */
		for (int i = 0; i < rows; i++)
		{
			const char *did = server_value(res, i, 0, "a DID");
			const char *rev = PQgetisnull(res, i, 1) ? "" : PQgetvalue(res, i, 1);
			const char *seq = PQgetisnull(res, i, 2) ? "" : PQgetvalue(res, i, 2);
			const char *status = server_value(res, i, 3, "a status");
			int64_t		v;

			server_check(did_valid(did, strlen(did)), "DID", did);
			server_check(didset_add(&seen, strdup(did)), "DID (listed twice)", did);
			server_check(!*rev || tid_valid(rev, strlen(rev)), "rev", rev);
			server_check(!*seq || car_int64_parse(seq, strlen(seq), &v), "seq", seq);
			server_check(car_status_ok(status, strlen(status)), "status", status);
			printf("%s\t%s\t%s\t%s\n", did, rev, seq, status);
		}
		free(after);
		after = rows > 0 ? strdup(PQgetvalue(res, rows - 1, 0)) : NULL;
		PQclear(res);
		if (rows < 1000)
			break;
	}
	free(after);
	PQfinish(conn);
	return 0;
}

static int
cmd_backup(int argc, char **argv)
{
	const char *dir;
	int			dirfd;
	PGconn	   *conn;
	Repo	   *repos;
	int			n,
				exported = 0;
	char		name[CAR_FILE_NAME_MAX + 1],
				line[CAR_MANIFEST_MAX_LINE + 2];
	FILE	   *manifest;
	Progress	prog;
	uint64_t	total = 0;

	if (argc != 1)
		fail("backup takes one directory (try \"%s --help\")", progname);
	dir = argv[0];
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		fail("cannot create \"%s\": %s", dir, strerror(errno));
	/* every file is made inside it, by name: nothing outside it is written */
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fail("cannot open \"%s\": %s", dir, strerror(errno));
	conn = connect_db();
	/* one snapshot for the whole backup */
	exec_ok(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	repos = list_all(conn, &n);
	manifest = create_in(dirfd, dir, "manifest.tsv");
	fprintf(manifest, "# did\tfile\trev\tseq\tdid_key\tbytes\tstatus\n");
	progress_init(&prog, "backup");
	for (int i = 0; i < n; i++)
	{
		FILE	   *out;
		CarManifestEntry e;
		long long	seq = 0;
		uint64_t	bytes;
		char		extra[64];
		Progress	quiet = {false};

		memset(&e, 0, sizeof(e));
		snprintf(e.did, sizeof(e.did), "%s", repos[i].did);
		snprintf(e.status, sizeof(e.status), "%s", repos[i].status);
		if (strcmp(repos[i].status, "active") != 0)
		{
			/* deactivated and deleted repos have no export: noted, not saved */
			if (car_manifest_format(&e, line, sizeof(line)) == 0)
				fail("cannot note repo \"%s\" in the manifest", repos[i].did);
			fputs(line, manifest);
			continue;
		}
		/* list_all checked the DID: a plain file name */
		snprintf(name, sizeof(name), "%s.car", repos[i].did);
		out = create_in(dirfd, dir, name);
		bytes = export_to(conn, repos[i].did, NULL, out, &quiet, &seq, e.rev);
		if (fclose(out) != 0)
			fail("cannot write \"%s/%s\": %s", dir, name, strerror(errno));
		snprintf(e.file, sizeof(e.file), "%s", name);
		snprintf(e.did_key, sizeof(e.did_key), "%s", repos[i].did_key);
		e.seq = seq;
		e.bytes = (int64_t) bytes;
		if (car_manifest_format(&e, line, sizeof(line)) == 0)
			fail("cannot note repo \"%s\" in the manifest", repos[i].did);
		fputs(line, manifest);
		total += bytes;
		exported++;
		snprintf(extra, sizeof(extra), " repos, %.1f MB", total / 1048576.0);
		progress_show(&prog, i + 1, n, "", extra, i + 1 == n);
	}
	if (n == 0 || strcmp(repos[n - 1].status, "active") != 0)
		progress_show(&prog, n, n, "", " repos", true);
	progress_done(&prog);
	exec_ok(conn, "COMMIT");
	if (fclose(manifest) != 0)
		fail("cannot write the manifest: %s", strerror(errno));
	close(dirfd);
	say("%s: %d of %d repos exported into %s (%.1f MB)\n", progname, exported, n, dir, total / 1048576.0);
	PQfinish(conn);
	return 0;
}

/*
 * The manifest of a backup directory, whole and checked line by line
 * before anything is imported: one bad line refuses the whole restore.
 */
static CarManifestEntry *
read_manifest(int dirfd, const char *dir, int *count)
{
	int			fd = openat(dirfd, "manifest.tsv", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char	   *data;
	size_t		len = 0;
	CarManifestReader r;
	CarManifestEntry e,
			   *entries = NULL;
	CarManifestResult res;
	int			n = 0,
				cap = 0;
	char		err[512];

	if (fd < 0)
		fail("cannot open \"%s/manifest.tsv\": %s", dir, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		fail("\"%s/manifest.tsv\" is not a regular file", dir);
	if (st.st_size > CAR_MANIFEST_MAX_BYTES)
		fail("\"%s/manifest.tsv\" is larger than %d bytes", dir, CAR_MANIFEST_MAX_BYTES);
	data = malloc(st.st_size + 1);
	if (data == NULL)
		fail("out of memory");
	while (len < (size_t) st.st_size)
	{
		ssize_t		got = read(fd, data + len, st.st_size - len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			fail("cannot read \"%s/manifest.tsv\": %s", dir, got < 0 ? strerror(errno) : "it shrank");
		len += got;
	}
	close(fd);
	car_manifest_init(&r, data, len);
	while ((res = car_manifest_next(&r, &e, err, sizeof(err))) != CAR_MANIFEST_END)
	{
		if (res == CAR_MANIFEST_ERROR)
			fail("%s/manifest.tsv: %s; nothing was restored", dir, err + strlen("manifest "));
		if (res != CAR_MANIFEST_ENTRY)
			continue;			/* a comment, or a repo that was not active */
		if (n == cap)
		{
			cap = cap ? cap * 2 : 64;
			entries = realloc(entries, cap * sizeof(CarManifestEntry));
			if (entries == NULL)
				fail("out of memory");
		}
		entries[n++] = e;
	}
	free(data);
	*count = n;
	return entries;
}

static int
cmd_restore(int argc, char **argv)
{
	const char *dir;
	int			dirfd;
	CarManifestEntry *entries;
	PGconn	   *conn;
	int			total,
				done = 0,
				failed = 0;
	Progress	prog;

	if (argc != 1)
		fail("restore takes one backup directory (try \"%s --help\")", progname);
	dir = argv[0];
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fail("cannot open \"%s\": %s", dir, strerror(errno));
	entries = read_manifest(dirfd, dir, &total);
	conn = connect_db();
	progress_init(&prog, "restore");
	for (int i = 0; i < total; i++)
	{
		const CarManifestEntry *e = &entries[i];
		char	   *key = NULL;
		Progress	quiet = {false};
		struct stat st;
		char		why[256];
		int			fd;

		/* a file of the directory itself (the manifest checked its name), as large as noted */
		if ((fd = open_car(dirfd, e->file, &st, why, sizeof(why))) < 0)
			fprintf(stderr, "%s: error: cannot read \"%s/%s\": %s\n", progname, dir, e->file, why);
		else if (st.st_size != e->bytes)
		{
			fprintf(stderr, "%s: error: \"%s/%s\" has %lld bytes, the manifest says %lld\n", progname, dir,
					e->file, (long long) st.st_size, (long long) e->bytes);
			close(fd);
		}
		else
		{
			char		path[PATH_MAX_SHOWN];

			snprintf(path, sizeof(path), "%s/%s", dir, e->file);
			/* one transaction a repo: one refused (already here, say) does not stop the others */
			exec_ok(conn, "BEGIN");
			key = import_file(conn, fd, path, st.st_size, &quiet, e->did_key, true);
			exec_ok(conn, key ? "COMMIT" : "ROLLBACK");
		}
		if (key == NULL)
			failed++;
		else
		{
			done++;
			free(key);
		}
		progress_show(&prog, done + failed, total, "", " repos", done + failed == total);
	}
	progress_done(&prog);
	close(dirfd);
	free(entries);
	PQfinish(conn);
	say("%s: %d of %d repos restored from %s%s\n", progname, done, total, dir,
		failed ? " (see the errors above)" : "");
	return failed ? 1 : 0;
}

int
main(int argc, char **argv)
{
	static struct option long_options[] = {
		{"since", required_argument, NULL, 's'},
		{"did-key", required_argument, NULL, 'k'},
		{"dbname", required_argument, NULL, 'd'},
		{"host", required_argument, NULL, 'h'},
		{"port", required_argument, NULL, 'p'},
		{"username", required_argument, NULL, 'U'},
		{"no-password", no_argument, NULL, 'w'},
		{"password", no_argument, NULL, 'W'},
		{"quiet", no_argument, NULL, 'q'},
		{"progress", no_argument, NULL, 'P'},
		{"no-progress", no_argument, NULL, 1},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, '?'},
		{NULL, 0, NULL, 0}
	};
	const char *since = NULL,
			   *did_key = NULL,
			   *cmd;
	int			c;

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-?") == 0 ||
					 strcmp(argv[1], "help") == 0))
	{
		usage(stdout);
		return 0;
	}
	if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0))
	{
		printf("%s (repo_stream) %s\n", progname, CLI_VERSION);
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-')
	{
		usage(stderr);
		return 1;
	}
	cmd = argv[1];
	argv++;
	argc--;
	while ((c = getopt_long(argc, argv, "s:k:d:h:p:U:wWqPV?", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 's':
				since = optarg;
				break;
			case 'k':
				did_key = optarg;
				break;
			case 'd':
				opt_dbname = optarg;
				break;
			case 'h':
				opt_host = optarg;
				break;
			case 'p':
				opt_port = optarg;
				break;
			case 'U':
				opt_user = optarg;
				break;
			case 'w':
				opt_password = -1;
				break;
			case 'W':
				opt_password = 1;
				break;
			case 'q':
				opt_quiet = true;
				break;
			case 'P':
				opt_progress = 1;
				break;
			case 1:
				opt_progress = 0;
				break;
			case 'V':
				printf("%s (repo_stream) %s\n", progname, CLI_VERSION);
				return 0;
			case '?':
			default:
				if (optopt == 0 && c == '?' && strcmp(argv[optind - 1], "-?") == 0)
				{
					usage(stdout);
					return 0;
				}
				fprintf(stderr, "Try \"%s --help\" for more information.\n", progname);
				return 1;
		}
	}
	argc -= optind;
	argv += optind;
	if (since && strcmp(cmd, "export") != 0)
		fail("--since only applies to export");
	if (strcmp(cmd, "export") == 0)
		return cmd_export(argc, argv, since);
	if (strcmp(cmd, "import") == 0)
		return cmd_import(argc, argv, did_key);
	if (strcmp(cmd, "backup") == 0)
		return cmd_backup(argc, argv);
	if (strcmp(cmd, "restore") == 0)
		return cmd_restore(argc, argv);
	if (strcmp(cmd, "list") == 0)
		return cmd_list(argc, argv);
	fail("unknown command \"%s\" (try \"%s --help\")", cmd, progname);
	return 1;
}
