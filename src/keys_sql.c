/*
 * keys_sql.c - repo signing keys in the backend.
 *
 * Each repo's Ed25519 seed is stored only sealed (keys.h) under a 32-byte
 * master key that lives in a file outside the database, so neither SQL nor
 * a pg_dump ever sees a usable private key.  The file is
 * repo_stream.master_key_file (superuser-only, hidden from other roles), by
 * default repo_stream_master.key next to postgresql.conf.  It must be a
 * regular file of exactly 32 bytes, owned by the server's OS user, mode
 * 0600 or stricter, and outside the data directory: a base backup, which a
 * role with nothing but REPLICATION can take, copies the data directory.
 *
 * The file is created only by repo_stream.create_master_key(), a
 * superuser's explicit step, never as a side effect: a database of this
 * cluster may hold keys sealed under a file that was not brought along
 * (a restore), and a silently made new key would strand them.  A missing
 * file, or one that did not seal the key at hand, is an ERROR: signing
 * never falls back to a new key.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "access/htup_details.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "keys.h"
#include "keys_sql.h"

#define MASTER_KEY_DEFAULT_NAME "repo_stream_master.key"

PG_FUNCTION_INFO_V1(rs_verify_signature);
PG_FUNCTION_INFO_V1(rs_keys_generate_sql);
PG_FUNCTION_INFO_V1(rs_keys_sign_sql);
PG_FUNCTION_INFO_V1(rs_create_master_key);

static char *master_key_file_setting = NULL;

/* Per-backend cache: the key, and the absolute path it was read from. */
static uint8 master_key[RS_MASTER_KEY_LEN];
static char *master_key_path = NULL;	/* NULL when nothing is cached */
static char master_key_setting[MAXPGPATH];	/* the setting it was read for */

void
rs_keys_define_gucs(void)
{
	/* GUC_SUPERUSER_ONLY: other roles can neither SHOW nor see it in pg_settings. */
	DefineCustomStringVariable("repo_stream.master_key_file",
							   "File holding the master key that seals repo signing keys.",
							   "Empty means " MASTER_KEY_DEFAULT_NAME " in the directory of postgresql.conf; "
							   "a relative path is relative to that directory.  Never inside the data directory.",
							   &master_key_file_setting,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
}

/* Whether path is dir or lies under it, also through symlinks. */
static bool
path_is_under(const char *dir, const char *path)
{
	char	   *parent = pstrdup(path);
	char	   *real_dir;
	char	   *real_parent;
	bool		under;

	if (path_is_prefix_of_path(dir, path))
		return true;
	get_parent_directory(parent);
	real_dir = realpath(dir, NULL);
	real_parent = realpath(parent, NULL);
	under = real_dir != NULL && real_parent != NULL &&
		path_is_prefix_of_path(real_dir, real_parent);
	free(real_dir);
	free(real_parent);
	pfree(parent);
	return under;
}

/*
 * Absolute path of the master key file the setting names; palloc'd.  ERROR
 * (F0000) when it would lie inside the data directory, or when the setting
 * is empty and postgresql.conf itself is in the data directory (initdb's
 * layout; Debian's clusters keep it in /etc/postgresql).
 */
static char *
master_key_file_path(void)
{
	const char *setting = master_key_file_setting;
	char	   *confdir = pstrdup(ConfigFileName);
	char	   *path;

	get_parent_directory(confdir);
	canonicalize_path(confdir);
	if (setting == NULL || setting[0] == '\0')
	{
		if (path_is_under(DataDir, confdir))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("repo_stream.master_key_file is not set, and the default place is inside the data directory"),
					 errdetail("By default the master key file is " MASTER_KEY_DEFAULT_NAME " next to postgresql.conf, "
							   "which this server keeps in its data directory \"%s\"; a base backup would copy "
							   "the key along with the keys it seals.", DataDir),
					 errhint("Set repo_stream.master_key_file to a path outside the data directory, "
							 "such as /etc/repo_stream/master.key.")));
		setting = MASTER_KEY_DEFAULT_NAME;
	}
	if (is_absolute_path(setting))
		path = pstrdup(setting);
	else
		path = psprintf("%s/%s", confdir, setting);
	canonicalize_path(path);
	pfree(confdir);
	if (path_is_under(DataDir, path))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("repo_stream master key file \"%s\" is inside the data directory \"%s\"", path, DataDir),
				 errdetail("A base backup (pg_basebackup), which a role with only the REPLICATION attribute "
						   "can take, copies every file of the data directory: the key would travel with "
						   "the sealed keys it protects."),
				 errhint("Move the file outside the data directory and point repo_stream.master_key_file at it.")));
	return path;
}

static void
forget_master_key(void)
{
	sodium_memzero(master_key, sizeof(master_key));
	if (master_key_path != NULL)
	{
		pfree(master_key_path);
		master_key_path = NULL;
	}
}

/*
 * Reads and checks the key file into key.  False if the file does not
 * exist; every other problem is an ERROR naming the path.
 */
static bool
read_master_key(const char *path, uint8 key[RS_MASTER_KEY_LEN])
{
	int			fd;
	struct stat st;
	ssize_t		n;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return false;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open repo_stream master key file \"%s\": %m", path)));
	}

	/* Check the opened file itself, so a swap after the check cannot slip in. */
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat repo_stream master key file \"%s\": %m", path)));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("repo_stream master key file \"%s\" is not a regular file", path)));
	if (st.st_uid != geteuid())
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("repo_stream master key file \"%s\" is not owned by the server's OS user", path),
				 errdetail("The file is owned by user ID %u; the server runs as user ID %u.",
						   (unsigned) st.st_uid, (unsigned) geteuid()),
				 errhint("Give the file to the server's OS user (chown) and make it mode 0600.")));
	if ((st.st_mode & 07777 & ~(S_IRUSR | S_IWUSR)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("repo_stream master key file \"%s\" has permissions %04o, which allow too much",
						path, (unsigned) (st.st_mode & 07777)),
				 errdetail("The master key file must be mode 0600 or stricter: no access for group or others."),
				 errhint("Run chmod 600 on the file.")));
	if (st.st_size != RS_MASTER_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg_plural("repo_stream master key file \"%s\" is %lld byte long, not %d",
							   "repo_stream master key file \"%s\" is %lld bytes long, not %d",
							   (unsigned long) st.st_size,
							   path, (long long) st.st_size, RS_MASTER_KEY_LEN),
				 errdetail("A master key file holds exactly %d random bytes.", RS_MASTER_KEY_LEN),
				 errhint("Restore the master key file from a backup.")));

	errno = 0;
	n = read(fd, key, RS_MASTER_KEY_LEN);
	if (n != RS_MASTER_KEY_LEN)
	{
		if (n < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read repo_stream master key file \"%s\": %m", path)));
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not read repo_stream master key file \"%s\": read %zd of %d bytes",
						path, n, RS_MASTER_KEY_LEN)));
	}
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close repo_stream master key file \"%s\": %m", path)));
	return true;
}

/*
 * Creates the key file with fresh random bytes.  The bytes go to a private
 * temporary file, which is fsynced and then hard-linked into place: link()
 * never replaces an existing file, so an existing key (a concurrent
 * creator's) survives and we fail with 42710, and the final name never
 * holds a partial key even after a crash.
 */
static void
create_master_key(const char *path)
{
	char	   *tmp = psprintf("%s.%d.tmp", path, (int) MyProcPid);
	char	   *dir;
	uint8		key[RS_MASTER_KEY_LEN];
	int			fd;
	int			save_errno;
	bool		created;

	/* A leftover of a crashed backend with our pid; its key was never used. */
	if (unlink(tmp) != 0 && errno != ENOENT)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not remove stale file \"%s\": %m", tmp)));

	fd = OpenTransientFilePerm(tmp, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY,
							   S_IRUSR | S_IWUSR);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create repo_stream master key file \"%s\": %m", tmp)));

	randombytes_buf(key, sizeof(key));
	errno = 0;
	if (write(fd, key, sizeof(key)) != sizeof(key))
	{
		save_errno = errno ? errno : ENOSPC;
		sodium_memzero(key, sizeof(key));
		CloseTransientFile(fd);
		unlink(tmp);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write repo_stream master key file \"%s\": %m", tmp)));
	}
	sodium_memzero(key, sizeof(key));

	if (pg_fsync(fd) != 0)
	{
		save_errno = errno;
		CloseTransientFile(fd);
		unlink(tmp);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync repo_stream master key file \"%s\": %m", tmp)));
	}
	if (CloseTransientFile(fd) != 0)
	{
		save_errno = errno;
		unlink(tmp);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close repo_stream master key file \"%s\": %m", tmp)));
	}

	created = link(tmp, path) == 0;
	save_errno = errno;
	if (unlink(tmp) != 0)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove temporary file \"%s\": %m", tmp)));
	if (!created && save_errno == EEXIST)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("repo_stream master key file \"%s\" already exists", path),
				 errhint("A master key is made once per cluster; back up the existing file instead.")));
	if (!created)
	{
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create repo_stream master key file \"%s\": %m", path)));
	}

	/* Make the new directory entry (and the unlink) durable. */
	dir = pstrdup(path);
	get_parent_directory(dir);
	fsync_fname_ext(dir, true, false, ERROR);

	ereport(LOG,
				(errmsg("repo_stream created master key file \"%s\"", path),
				 errdetail("Repo signing keys are sealed under this key; without the file they cannot be used."),
				 errhint("Back up this file, separately from database backups.")));
	pfree(dir);
	pfree(tmp);
}

const uint8 *
rs_master_key(void)
{
	const char *setting = master_key_file_setting ? master_key_file_setting : "";
	char	   *path;

	/* signing calls this per commit: no path checks while the setting stands */
	if (master_key_path != NULL && strcmp(setting, master_key_setting) == 0)
		return master_key;

	path = master_key_file_path();
	forget_master_key();
	if (!read_master_key(path, master_key))
	{
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("repo_stream master key file \"%s\" does not exist", path),
				 errdetail("Repo signing keys are sealed under the master key. It is made once per cluster, "
						   "by a superuser, never implicitly: a database of this cluster may hold keys "
						   "sealed under a file that was not brought along."),
				 errhint("If no database of this cluster holds repo keys yet, create it with "
						 "SELECT repo_stream.create_master_key(); otherwise restore the file from a backup, "
						 "or point repo_stream.master_key_file at it.")));
	}
	master_key_path = MemoryContextStrdup(TopMemoryContext, path);
	strlcpy(master_key_setting, setting, sizeof(master_key_setting));
	pfree(path);
	return master_key;
}

void
rs_keys_generate(RsBuf *sealed_out, char did_key_out[DID_KEY_ED25519_LEN + 1])
{
	const uint8 *master;
	uint8		seed[ED25519_SEED_LEN];
	uint8		pk[ED25519_PUBLIC_KEY_LEN];

	/*
	 * Seal under the key on disk now, not one this session cached before
	 * the file was replaced: a new key must open in every later session.
	 */
	forget_master_key();
	master = rs_master_key();

	/* Room first, so nothing can ERROR while the seed is on the stack. */
	rs_buf_reserve(sealed_out, RS_SEALED_LEN(ED25519_SEED_LEN));
	rs_ed25519_keypair(seed, pk);
	rs_seal(master, seed, sizeof(seed), sealed_out);
	sodium_memzero(seed, sizeof(seed));

	did_key_format_ed25519(pk, did_key_out);
}

/*
 * The public key of a did:key, parsed once per backend: signing checks it
 * per commit.  Direct-mapped by the string's hash; a collision re-parses.
 */
#define PK_CACHE_SIZE 1024

static struct
{
	char		did_key[DID_KEY_ED25519_LEN + 1];
	uint8		pk[ED25519_PUBLIC_KEY_LEN];
}			pk_cache[PK_CACHE_SIZE];

static void
did_key_public(const char *did_key, uint8 pk[ED25519_PUBLIC_KEY_LEN])
{
	size_t		len = strlen(did_key);
	int			slot = hash_bytes((const unsigned char *) did_key, len) % PK_CACHE_SIZE;

	if (strcmp(pk_cache[slot].did_key, did_key) == 0)
	{
		memcpy(pk, pk_cache[slot].pk, ED25519_PUBLIC_KEY_LEN);
		return;
	}
	rs_did_key_parse_or_error(did_key, len, pk);
	if (len == DID_KEY_ED25519_LEN)
	{
		memcpy(pk_cache[slot].did_key, did_key, len + 1);
		memcpy(pk_cache[slot].pk, pk, ED25519_PUBLIC_KEY_LEN);
	}
}

/*
 * Sealed keys seen to hold the seed of a public key, per backend: their
 * sealed bytes and that public key.  Sealed bytes carry a random nonce, so
 * equal bytes are the same key; and only what the master key unseals is
 * ever signed with.  Direct-mapped; a collision just derives again.
 */
#define VERIFIED_CACHE_SIZE 1024

static struct
{
	uint8		sealed[RS_SEALED_LEN(ED25519_SEED_LEN)];
	uint8		pk[ED25519_PUBLIC_KEY_LEN];
	bool		used;
}			verified_cache[VERIFIED_CACHE_SIZE];

static int
verified_slot(const uint8 *sealed, size_t len)
{
	return hash_bytes(sealed, len) % VERIFIED_CACHE_SIZE;
}

static bool
verified_get(const uint8 *sealed, size_t len, const uint8 pk[ED25519_PUBLIC_KEY_LEN])
{
	int			slot = verified_slot(sealed, len);

	return verified_cache[slot].used && len == sizeof(verified_cache[slot].sealed) &&
		memcmp(verified_cache[slot].sealed, sealed, len) == 0 &&
		memcmp(verified_cache[slot].pk, pk, ED25519_PUBLIC_KEY_LEN) == 0;
}

static void
verified_put(const uint8 *sealed, size_t len, const uint8 pk[ED25519_PUBLIC_KEY_LEN])
{
	int			slot = verified_slot(sealed, len);

	if (len != sizeof(verified_cache[slot].sealed))
		return;
	memcpy(verified_cache[slot].sealed, sealed, len);
	memcpy(verified_cache[slot].pk, pk, ED25519_PUBLIC_KEY_LEN);
	verified_cache[slot].used = true;
}

void
rs_keys_sign(const uint8 *sealed, size_t sealed_len,
			 const uint8 *msg, size_t len, const char *expected_did_key,
			 uint8 sig[ED25519_SIGNATURE_LEN])
{
	const uint8 *master;
	uint8		seed[ED25519_SEED_LEN];
	uint8		expected[ED25519_PUBLIC_KEY_LEN];
	uint8		pk[ED25519_PUBLIC_KEY_LEN];

	if (expected_did_key != NULL)
		did_key_public(expected_did_key, expected);

	/* Shape problems are the blob's fault whatever the master key. */
	if (sealed_len != RS_SEALED_LEN(ED25519_SEED_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("sealed signing key is malformed"),
				 errdetail("A sealed Ed25519 key is %d bytes long, not %zu.",
						   (int) RS_SEALED_LEN(ED25519_SEED_LEN), sealed_len)));
	if (sealed[0] != RS_SEAL_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("sealed signing key is malformed"),
				 errdetail("Its format version is %d; the only known version is %d.",
						   sealed[0], RS_SEAL_VERSION)));

	master = rs_master_key();
	if (!rs_unseal(master, sealed, sealed_len, seed, sizeof(seed)))
	{
		/*
		 * The cached key may predate a restore of the right file: read the
		 * file again before giving up, so long-lived sessions recover too.
		 */
		forget_master_key();
		master = rs_master_key();

		/*
		 * Authentication failure means another master key sealed this key
		 * (or the sealed bytes were altered: the MAC cannot tell which).
		 * F0000: the fix is in the server's configuration, and 28P01 would
		 * read as a failed client login.
		 */
		if (!rs_unseal(master, sealed, sealed_len, seed, sizeof(seed)))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("repo_stream master key file \"%s\" does not match the key that sealed this repo's signing key",
							master_key_path),
					 errdetail("The sealed signing key failed authentication: the master key file was replaced "
							   "after the key was sealed, or the sealed key was modified. Nothing was signed."),
					 errhint("Restore the master key file that was in use when the repo's key was created, "
							 "or point repo_stream.master_key_file at it.")));
	}

	/*
	 * Deriving the public key from the seed costs as much as the signature
	 * itself.  Once a sealed key has been seen to be the expected key's, it
	 * signs with that public key directly.
	 */
	if (expected_did_key != NULL && verified_get(sealed, sealed_len, expected))
	{
		rs_ed25519_sign_with_public(seed, expected, msg, len, sig);
		sodium_memzero(seed, sizeof(seed));
		return;
	}
	rs_ed25519_sign(seed, msg, len, sig, pk);
	sodium_memzero(seed, sizeof(seed));
	if (expected_did_key != NULL && memcmp(pk, expected, sizeof(pk)) != 0)
	{
		sodium_memzero(sig, ED25519_SIGNATURE_LEN);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the sealed signing key is not the key of %s", expected_did_key),
				 errdetail("The signature would not verify with the repo's did:key. Nothing was signed.")));
	}
	if (expected_did_key != NULL)
		verified_put(sealed, sealed_len, pk);
}

void
rs_did_key_parse_or_error(const char *text, size_t len,
						  uint8 pub[ED25519_PUBLIC_KEY_LEN])
{
	DidKeyError err;

	if (!did_key_parse_ed25519(text, len, pub, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Ed25519 did:key: \"%s\"", pnstrdup(text, len)),
				 errdetail("%s", did_key_strerror(err))));
}

/* ---- SQL ---- */

/* verify_signature(did_key text, message bytea, signature bytea) → boolean */
Datum
rs_verify_signature(PG_FUNCTION_ARGS)
{
	text	   *did = PG_GETARG_TEXT_PP(0);
	bytea	   *msg = PG_GETARG_BYTEA_PP(1);
	bytea	   *sig = PG_GETARG_BYTEA_PP(2);
	uint8		pk[ED25519_PUBLIC_KEY_LEN];

	rs_did_key_parse_or_error(VARDATA_ANY(did), VARSIZE_ANY_EXHDR(did), pk);
	if (VARSIZE_ANY_EXHDR(sig) != ED25519_SIGNATURE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_plural("invalid Ed25519 signature length: %d byte",
							   "invalid Ed25519 signature length: %d bytes",
							   (unsigned long) VARSIZE_ANY_EXHDR(sig), (int) VARSIZE_ANY_EXHDR(sig)),
				 errdetail("An Ed25519 signature is exactly %d bytes.", ED25519_SIGNATURE_LEN)));

	PG_RETURN_BOOL(rs_ed25519_verify(pk, (const uint8 *) VARDATA_ANY(msg), VARSIZE_ANY_EXHDR(msg),
									 (const uint8 *) VARDATA_ANY(sig)));
}

/* _keys_generate(OUT sealed bytea, OUT did_key text) */
Datum
rs_keys_generate_sql(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	RsBuf		sealed;
	char		did[DID_KEY_ED25519_LEN + 1];
	bytea	   *sealed_bytea;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	rs_buf_init(&sealed, RS_SEALED_LEN(ED25519_SEED_LEN));
	rs_keys_generate(&sealed, did);
	sealed_bytea = palloc(VARHDRSZ + sealed.len);
	SET_VARSIZE(sealed_bytea, VARHDRSZ + sealed.len);
	memcpy(VARDATA(sealed_bytea), sealed.data, sealed.len);
	rs_buf_free(&sealed);

	values[0] = PointerGetDatum(sealed_bytea);
	values[1] = CStringGetTextDatum(did);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* _keys_sign(sealed bytea, msg bytea) → bytea (64-byte signature) */
Datum
rs_keys_sign_sql(PG_FUNCTION_ARGS)
{
	bytea	   *sealed = PG_GETARG_BYTEA_PP(0);
	bytea	   *msg = PG_GETARG_BYTEA_PP(1);
	bytea	   *sig = palloc(VARHDRSZ + ED25519_SIGNATURE_LEN);

	rs_keys_sign((const uint8 *) VARDATA_ANY(sealed), VARSIZE_ANY_EXHDR(sealed),
				 (const uint8 *) VARDATA_ANY(msg), VARSIZE_ANY_EXHDR(msg), NULL,
				 (uint8 *) VARDATA(sig));
	SET_VARSIZE(sig, VARHDRSZ + ED25519_SIGNATURE_LEN);
	PG_RETURN_BYTEA_P(sig);
}

/*
 * create_master_key() -> text: creates the master key file (32 random
 * bytes, mode 0600, fsynced) where repo_stream.master_key_file says and
 * returns its path.  Superusers only (42501); 42710 if the file exists,
 * F0000 if the place is refused (see master_key_file_path).
 */
Datum
rs_create_master_key(PG_FUNCTION_ARGS)
{
	char	   *path;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers may create the repo_stream master key file")));
	path = master_key_file_path();
	forget_master_key();
	create_master_key(path);
	PG_RETURN_TEXT_P(cstring_to_text(path));
}
