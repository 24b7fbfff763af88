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
 */
#include <errno.h>
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

#define CLI_VERSION "0.1.0"
#define LO_WRITE_BYTES (1024 * 1024)
#define INV_WRITE 0x00020000
#define INV_READ 0x00040000

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
 * export's seq and rev (rev_out: 16 bytes).
 */
static uint64_t
export_to(PGconn *conn, const char *did, const char *since, FILE *out, Progress *prog,
		  long long *seq_out, char *rev_out)
{
	const char *params[2] = {did, since};
	PGresult   *res;
	uint64_t	bytes = 0;
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
			int			len = PQgetlength(res, 0, 2);

			*seq_out = (long long) be64(PQgetvalue(res, 0, 0));
			snprintf(rev_out, 16, "%.*s", PQgetlength(res, 0, 1), PQgetvalue(res, 0, 1));
			if (fwrite(PQgetvalue(res, 0, 2), 1, len, out) != (size_t) len)
				fail("cannot write the CAR: %s", strerror(errno));
			bytes += len;
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
	char		rev[16] = "";
	uint64_t	bytes;
	bool		to_stdout;

	if (argc < 1 || argc > 2)
		fail("export takes a DID and an optional file (try \"%s --help\")", progname);
	did = argv[0];
	if (argc == 2)
		path = argv[1];
	else
	{
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
 * Import one CAR file inside the caller's transaction; returns the new
 * did:key (malloc'd).  When the server refuses the CAR: exits, or with soft
 * prints the error and returns NULL (the transaction is then aborted).
 */
static char *
import_file(PGconn *conn, const char *path, const char *did_key, Progress *prog, bool soft)
{
	FILE	   *in = fopen(path, "rb");
	struct stat stt;
	Oid			oid;
	int			fd;
	char	   *buf;
	size_t		n;
	double		done = 0;
	char		oidtext[16];
	const char *params[2];
	PGresult   *res;
	char	   *key;

	if (in == NULL || fstat(fileno(in), &stt) != 0)
	{
		if (!soft)
			fail("cannot open \"%s\": %s", path, strerror(errno));
		fprintf(stderr, "%s: error: cannot open \"%s\": %s\n", progname, path, strerror(errno));
		return NULL;
	}
	oid = lo_creat(conn, INV_READ | INV_WRITE);
	if (oid == 0)
		fail("cannot create a large object: %s", PQerrorMessage(conn));
	fd = lo_open(conn, oid, INV_WRITE);
	if (fd < 0)
		fail("cannot open the large object: %s", PQerrorMessage(conn));
	buf = malloc(LO_WRITE_BYTES);
	while ((n = fread(buf, 1, LO_WRITE_BYTES, in)) > 0)
	{
		if (lo_write(conn, fd, buf, n) != (int) n)
			fail("cannot write the large object: %s", PQerrorMessage(conn));
		done += n;
		progress_show(prog, done / 1048576.0, stt.st_size / 1048576.0, "MB", " uploaded", false);
	}
	if (ferror(in))
		fail("cannot read \"%s\": %s", path, strerror(errno));
	fclose(in);
	free(buf);
	lo_close(conn, fd);
	progress_show(prog, done / 1048576.0, stt.st_size / 1048576.0, "MB", " uploaded, checking and writing",
				  true);

	snprintf(oidtext, sizeof(oidtext), "%u", oid);
	params[0] = oidtext;
	params[1] = did_key;
	res = PQexecParams(conn, "SELECT repo_stream.import_repo_lo($1::oid, $2)", 2, NULL, params, NULL,
					   NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		progress_done(prog);
		if (!soft)
			fail("import of \"%s\" failed: %s", path, PQerrorMessage(conn));
		fprintf(stderr, "%s: error: import of \"%s\" failed: %s", progname, path, PQerrorMessage(conn));
		PQclear(res);
		return NULL;
	}
	key = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQclear(run(conn, "SELECT lo_unlink($1::oid)", 1, params, PGRES_TUPLES_OK));
	return key;
}

static int
cmd_import(int argc, char **argv, const char *did_key)
{
	PGconn	   *conn;
	Progress	prog;
	char	   *key;

	if (argc != 1)
		fail("import takes one file (try \"%s --help\")", progname);
	if (did_key == NULL)
		fail("import needs --did-key, the did:key that signed the CAR");
	conn = connect_db();
	progress_init(&prog, argv[0]);
	exec_ok(conn, "BEGIN");
	key = import_file(conn, argv[0], did_key, &prog, false);
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

/* Every repo, page by page, in the current transaction's snapshot. */
static Repo *
list_all(PGconn *conn, int *count)
{
	Repo	   *repos = NULL;
	int			n = 0,
				cap = 0;
	char	   *after = NULL;

	for (;;)
	{
		const char *params[1] = {after};
		PGresult   *res = run(conn,
							  "SELECT l.did, l.status, r.did_key FROM repo_stream.list_repos($1, 1000) l"
							  "  JOIN repo_stream.repos r USING (did)",
							  1, params, PGRES_TUPLES_OK);
		int			rows = PQntuples(res);

		for (int i = 0; i < rows; i++)
		{
			if (n == cap)
			{
				cap = cap ? cap * 2 : 256;
				repos = realloc(repos, cap * sizeof(Repo));
			}
			repos[n].did = strdup(PQgetvalue(res, i, 0));
			repos[n].status = strdup(PQgetvalue(res, i, 1));
			repos[n].did_key = strdup(PQgetvalue(res, i, 2));
			n++;
		}
		free(after);
		after = rows > 0 ? strdup(PQgetvalue(res, rows - 1, 0)) : NULL;
		PQclear(res);
		if (rows < 1000)
			break;
	}
	free(after);
	*count = n;
	return repos;
}

static int
cmd_list(int argc, char **argv)
{
	PGconn	   *conn;
	char	   *after = NULL;

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

		for (int i = 0; i < rows; i++)
			printf("%s\t%s\t%s\t%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				   PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
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
	PGconn	   *conn;
	Repo	   *repos;
	int			n,
				exported = 0;
	char		path[4200];
	FILE	   *manifest;
	Progress	prog;
	uint64_t	total = 0;

	if (argc != 1)
		fail("backup takes one directory (try \"%s --help\")", progname);
	dir = argv[0];
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		fail("cannot create \"%s\": %s", dir, strerror(errno));
	conn = connect_db();
	/* one snapshot for the whole backup */
	exec_ok(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	repos = list_all(conn, &n);
	snprintf(path, sizeof(path), "%s/manifest.tsv", dir);
	if ((manifest = fopen(path, "w")) == NULL)
		fail("cannot create \"%s\": %s", path, strerror(errno));
	fprintf(manifest, "# did\tfile\trev\tseq\tdid_key\tbytes\tstatus\n");
	progress_init(&prog, "backup");
	for (int i = 0; i < n; i++)
	{
		FILE	   *out;
		long long	seq = 0;
		char		rev[16] = "";
		uint64_t	bytes;
		char		extra[64];
		Progress	quiet = {false};

		if (strcmp(repos[i].status, "active") != 0)
		{
			/* deactivated and deleted repos have no export: noted, not saved */
			fprintf(manifest, "%s\t\t\t\t\t\t%s\n", repos[i].did, repos[i].status);
			continue;
		}
		/* DIDs hold [A-Za-z0-9._:%-] only: safe as file names */
		snprintf(path, sizeof(path), "%s/%s.car", dir, repos[i].did);
		if ((out = fopen(path, "wb")) == NULL)
			fail("cannot create \"%s\": %s", path, strerror(errno));
		bytes = export_to(conn, repos[i].did, NULL, out, &quiet, &seq, rev);
		if (fclose(out) != 0)
			fail("cannot write \"%s\": %s", path, strerror(errno));
		fprintf(manifest, "%s\t%s.car\t%s\t%lld\t%s\t%llu\t%s\n", repos[i].did, repos[i].did, rev, seq,
				repos[i].did_key, (unsigned long long) bytes, repos[i].status);
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
	say("%s: %d of %d repos exported into %s (%.1f MB)\n", progname, exported, n, dir, total / 1048576.0);
	PQfinish(conn);
	return 0;
}

static int
cmd_restore(int argc, char **argv)
{
	const char *dir;
	char		path[4200],
				line[8192];
	FILE	   *manifest;
	PGconn	   *conn;
	int			total = 0,
				done = 0,
				failed = 0;
	Progress	prog;

	if (argc != 1)
		fail("restore takes one backup directory (try \"%s --help\")", progname);
	dir = argv[0];
	snprintf(path, sizeof(path), "%s/manifest.tsv", dir);
	if ((manifest = fopen(path, "r")) == NULL)
		fail("cannot open \"%s\": %s", path, strerror(errno));
	while (fgets(line, sizeof(line), manifest))
		if (line[0] != '#' && strstr(line, ".car\t"))
			total++;
	rewind(manifest);
	conn = connect_db();
	progress_init(&prog, "restore");
	while (fgets(line, sizeof(line), manifest))
	{
		char	   *f[7] = {0};
		char	   *s = line;
		int			k = 0;
		char	   *key;
		Progress	quiet = {false};

		if (line[0] == '#')
			continue;
		line[strcspn(line, "\n")] = '\0';
		while (k < 7 && (f[k] = strsep(&s, "\t")) != NULL)
			k++;
		if (k < 7 || f[1][0] == '\0')
			continue;			/* a repo that was not active: nothing to restore */
		snprintf(path, sizeof(path), "%s/%s", dir, f[1]);
		/* one transaction a repo: one refused (already here, say) does not stop the others */
		exec_ok(conn, "BEGIN");
		key = import_file(conn, path, f[4], &quiet, true);
		if (key == NULL)
		{
			failed++;
			exec_ok(conn, "ROLLBACK");
		}
		else
		{
			exec_ok(conn, "COMMIT");
			done++;
			free(key);
		}
		progress_show(&prog, done + failed, total, "", " repos", done + failed == total);
	}
	progress_done(&prog);
	fclose(manifest);
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
