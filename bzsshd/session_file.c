/* session_file.c: the config dir, the session file, our SSH host key and
 * the known_hosts file that lets ssh trust it. */
#include "bzsshd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pwd.h>
#include <libssh/libssh.h>
#include <sodium.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define SESSION_FILE_MAX (64u * 1024)

int
bz_config_dir_resolve(const char *given, char **out, char *err, size_t errlen)
{
	const char *env, *home;
	struct passwd *pw;

	*out = NULL;
	if (given != NULL && *given != '\0')
		*out = strdup(given);
	else if ((env = getenv("BZ_CONFIG_DIR")) != NULL && *env != '\0')
		*out = strdup(env);
	else if ((env = getenv("XDG_CONFIG_HOME")) != NULL && *env == '/') {
		if (asprintf(out, "%s/bz", env) < 0)
			*out = NULL;
	} else {
		if ((home = getenv("HOME")) == NULL || *home == '\0') {
			if ((pw = getpwuid(getuid())) == NULL) {
				bz_errf(err, errlen, "cannot find the home "
				    "directory; use --config-dir");
				return BZ_ERR_INVALID;
			}
			home = pw->pw_dir;
		}
		if (asprintf(out, "%s/.config/bz", home) < 0)
			*out = NULL;
	}
	if (*out == NULL) {
		bz_errf(err, errlen, "out of memory");
		return BZ_ERR_ALLOC;
	}
	return BZ_OK;
}

char *
bz_config_dir_file(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static int
dup_member(const json_t *o, const char *key, int required, char **out,
    char *err, size_t errlen)
{
	const char *v = bz_json_str(o, key);

	*out = NULL;
	if (v == NULL) {
		if (!required)
			return BZ_OK;
		bz_errf(err, errlen, "session file: missing \"%s\"", key);
		return BZ_ERR_FORMAT;
	}
	if ((*out = strdup(v)) == NULL)
		return BZ_ERR_ALLOC;
	return BZ_OK;
}

int
bz_session_load(const char *dir, struct bz_session *s, char *err,
    size_t errlen)
{
	char *path = NULL;
	uint8_t *text = NULL;
	size_t len = 0;
	json_t *o = NULL, *exp;
	int r = BZ_ERR_ALLOC;

	memset(s, 0, sizeof(*s));
	if ((path = bz_config_dir_file(dir, "session")) == NULL)
		goto out;
	if (access(path, F_OK) != 0) {
		bz_errf(err, errlen, "no session file %s", path);
		r = BZ_ERR_INVALID;
		goto out;
	}
	if ((r = bz_check_secret_mode(path, err, errlen)) != 0 ||
	    (r = bz_read_file(path, SESSION_FILE_MAX, &text, &len, err,
	    errlen)) != 0)
		goto out;
	r = BZ_ERR_FORMAT;
	if ((o = bz_json_parse_object(text, len, err, errlen)) == NULL)
		goto out;
	if ((r = dup_member(o, "proxy", 1, &s->proxy, err, errlen)) != 0 ||
	    (r = dup_member(o, "ca_file", 0, &s->ca_file, err, errlen)) != 0 ||
	    (r = dup_member(o, "issuer", 0, &s->issuer, err, errlen)) != 0 ||
	    (r = dup_member(o, "user", 1, &s->user, err, errlen)) != 0 ||
	    (r = dup_member(o, "session", 1, &s->session, err, errlen)) != 0 ||
	    (r = dup_member(o, "id_token", 0, &s->id_token, err, errlen)) != 0 ||
	    (r = dup_member(o, "login_token", 0, &s->login_token, err,
	    errlen)) != 0 ||
	    (r = dup_member(o, "refresh_token", 0, &s->refresh_token, err,
	    errlen)) != 0 ||
	    (r = dup_member(o, "client_id", 0, &s->client_id, err,
	    errlen)) != 0 ||
	    (r = dup_member(o, "client_key", 0, &s->client_key, err,
	    errlen)) != 0 ||
	    (r = dup_member(o, "nonce_salt", 0, &s->nonce_salt, err,
	    errlen)) != 0)
		goto out;
	if ((exp = json_object_get(o, "expires")) == NULL ||
	    !json_is_integer(exp)) {
		bz_errf(err, errlen, "session file: missing \"expires\"");
		r = BZ_ERR_FORMAT;
		goto out;
	}
	s->expires = (time_t)json_integer_value(exp);
	if (s->ca_file != NULL && *s->ca_file == '\0') {
		free(s->ca_file);
		s->ca_file = NULL;
	}
	r = BZ_OK;
 out:
	if (r != BZ_OK)
		bz_session_clear(s);
	json_decref(o);
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	free(path);
	return r;
}

int
bz_session_save(const char *dir, const struct bz_session *s, char *err,
    size_t errlen)
{
	char *path = NULL, *text = NULL;
	json_t *o = NULL;
	int r = BZ_ERR_ALLOC;

	o = json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:s?, s:s?, s:s?, s:s?, "
	    "s:s?, s:s?, s:I}", "proxy", s->proxy, "ca_file", s->ca_file,
	    "issuer", s->issuer, "user", s->user, "session", s->session,
	    "id_token", s->id_token, "login_token", s->login_token,
	    "refresh_token", s->refresh_token, "client_id", s->client_id,
	    "client_key", s->client_key, "nonce_salt", s->nonce_salt,
	    "expires", (json_int_t)s->expires);
	if (o == NULL || (text = bz_json_dump(o)) == NULL ||
	    (path = bz_config_dir_file(dir, "session")) == NULL) {
		bz_errf(err, errlen, "cannot serialise the session");
		goto out;
	}
	r = bz_write_secret_file(path, text, strlen(text), err, errlen);
 out:
	if (text != NULL) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	json_decref(o); /* jansson keeps copies of the secrets: best effort */
	free(path);
	return r;
}

void
bz_session_clear(struct bz_session *s)
{
	free(s->proxy);
	free(s->ca_file);
	free(s->issuer);
	free(s->user);
	bz_free_secret(&s->session);
	bz_free_secret(&s->id_token);
	bz_free_secret(&s->login_token);
	bz_free_secret(&s->refresh_token);
	free(s->client_id);
	bz_free_secret(&s->client_key);
	free(s->nonce_salt);
	memset(s, 0, sizeof(*s));
}

int
bz_session_client_key(const struct bz_session *s, uint8_t sk[64])
{
	uint8_t *d = NULL;
	size_t n = 0;
	int r = BZ_ERR_INVALID;

	if (s->client_key != NULL && bz_b64url_decode(s->client_key,
	    strlen(s->client_key), 64, &d, &n) == 0 && n == 64) {
		memcpy(sk, d, 64);
		r = BZ_OK;
	}
	if (d != NULL)
		sodium_memzero(d, n);
	free(d);
	return r;
}

/* Create a new ed25519 key at path, 0600 from the start (umask). */
static int
host_key_create(const char *path, char *err, size_t errlen)
{
	ssh_key key = NULL;
	mode_t old;
	int rc;

	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
		bz_errf(err, errlen, "cannot generate the host key");
		return BZ_ERR_INVALID;
	}
	old = umask(077);
	rc = ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path);
	umask(old);
	ssh_key_free(key);
	if (rc != SSH_OK || chmod(path, 0600) != 0) {
		bz_errf(err, errlen, "cannot write the host key %s", path);
		unlink(path);
		return BZ_ERR_INVALID;
	}
	bz_debug("created host key %s", path);
	return BZ_OK;
}

int
bz_host_key_ensure(const char *dir, char **out, char *err, size_t errlen)
{
	char *path = NULL;
	int r;

	*out = NULL;
	if ((r = bz_mkdir_p(dir, 0700, err, errlen)) != 0)
		return r;
	if ((path = bz_config_dir_file(dir, "host_ed25519_key")) == NULL)
		return BZ_ERR_ALLOC;
	if (access(path, F_OK) != 0 &&
	    (r = host_key_create(path, err, errlen)) != 0)
		goto out;
	if ((r = bz_check_secret_mode(path, err, errlen)) != 0)
		goto out;
	*out = path;
	path = NULL;
 out:
	free(path);
	return r;
}

int
bz_known_hosts_write(const char *dir, char *err, size_t errlen)
{
	char *keypath = NULL, *khpath = NULL, *b64 = NULL, *line = NULL;
	ssh_key key = NULL;
	int r, n;

	if ((r = bz_host_key_ensure(dir, &keypath, err, errlen)) != 0)
		goto out;
	r = BZ_ERR_INVALID;
	if (ssh_pki_import_privkey_file(keypath, NULL, NULL, NULL, &key) !=
	    SSH_OK || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
		bz_errf(err, errlen, "cannot read the host key %s", keypath);
		goto out;
	}
	n = asprintf(&line, "bzsshd %s %s\n",
	    ssh_key_type_to_char(ssh_key_type(key)), b64);
	if (n < 0 || (khpath = bz_config_dir_file(dir, "known_hosts")) == NULL) {
		line = NULL;
		r = BZ_ERR_ALLOC;
		goto out;
	}
	/* Public data, but written whole and atomically like a secret. */
	if ((r = bz_write_secret_file(khpath, line, strlen(line), err,
	    errlen)) != 0)
		goto out;
	r = BZ_OK;
 out:
	ssh_string_free_char(b64);
	ssh_key_free(key);
	free(line);
	free(khpath);
	free(keypath);
	return r;
}
