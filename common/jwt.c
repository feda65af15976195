/*
 * jwt.c: JWKS parsing and ID-token verification with OpenSSL 3 EVP;
 * see jwt.h. The key is chosen by kid and the algorithm is pinned to the
 * key's type, so a header can never pick HMAC or "none".
 */
#include "jwt.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define JWT_PART_MAX (BZ_JWT_MAX_LEN)  /* decoded header/payload bound */
#define JWT_SIG_MAX 1024               /* RSA-8192 */
#define JWK_RSA_N_MAX 1024             /* modulus bytes */
#define JWK_RSA_E_MAX 8
#define JWK_KID_MAX 256
#define JWKS_KEYS_MAX 64
#define RSA_MIN_BITS 2048

enum jwk_type { JWK_RSA = 1, JWK_EC = 2 };

struct jwk {
	char *kid;
	enum jwk_type type;
	EVP_PKEY *pkey;
};

struct bz_jwks {
	struct jwk *keys;
	size_t n;
};

static const char *
type_name(enum jwk_type t)
{
	return t == JWK_RSA ? "RSA" : "EC";
}

/* Copy of s safe to put in a message: printable ASCII, short. */
static void
printable(const char *s, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 4 < outlen; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i] != '\0' && i + 3 < outlen) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

/* Decode a base64url member of a JWK into exactly [min, max] bytes. */
static int
jwk_bytes(const json_t *jwk, const char *name, size_t min, size_t max,
    uint8_t **out, size_t *outlen)
{
	const char *s = bz_json_str(jwk, name);

	*out = NULL;
	if (s == NULL)
		return BZ_ERR_FORMAT;
	if (bz_b64url_decode(s, strlen(s), max, out, outlen) != 0 ||
	    *outlen < min) {
		free(*out);
		*out = NULL;
		return BZ_ERR_FORMAT;
	}
	return BZ_OK;
}

static EVP_PKEY *
pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pkey = NULL;

	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	/* For EC this checks the point is on the curve. */
	if ((chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
	    EVP_PKEY_public_check(chk) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
 out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *
jwk_rsa(const json_t *jwk)
{
	uint8_t *n = NULL, *e = NULL;
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;

	if (jwk_bytes(jwk, "n", 1, JWK_RSA_N_MAX, &n, &nlen) != 0 ||
	    jwk_bytes(jwk, "e", 1, JWK_RSA_E_MAX, &e, &elen) != 0)
		goto out;
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		goto out;
	pkey = pkey_fromdata("RSA", bld);
	if (pkey != NULL && EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
 out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return pkey;
}

static EVP_PKEY *
jwk_ec(const json_t *jwk)
{
	uint8_t *x = NULL, *y = NULL, pub[65];
	size_t xlen, ylen;
	const char *crv = bz_json_str(jwk, "crv");
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;

	if (crv == NULL || strcmp(crv, "P-256") != 0 ||
	    jwk_bytes(jwk, "x", 32, 32, &x, &xlen) != 0 ||
	    jwk_bytes(jwk, "y", 32, 32, &y, &ylen) != 0)
		goto out;
	/* Uncompressed SEC1 point: 0x04 || x || y. */
	pub[0] = 0x04;
	memcpy(pub + 1, x, 32);
	memcpy(pub + 33, y, 32);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
	    pub, sizeof(pub)))
		goto out;
	pkey = pkey_fromdata("EC", bld);
 out:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

void
bz_jwks_free(struct bz_jwks *jwks)
{
	size_t i;

	if (jwks == NULL)
		return;
	for (i = 0; i < jwks->n; i++) {
		free(jwks->keys[i].kid);
		EVP_PKEY_free(jwks->keys[i].pkey);
	}
	free(jwks->keys);
	free(jwks);
}

size_t
bz_jwks_count(const struct bz_jwks *jwks)
{
	return jwks ? jwks->n : 0;
}

static const struct jwk *
jwks_find(const struct bz_jwks *jwks, const char *kid)
{
	size_t i;

	for (i = 0; i < jwks->n; i++)
		if (strcmp(jwks->keys[i].kid, kid) == 0)
			return &jwks->keys[i];
	return NULL;
}

/* Parse one JWK into jwks; keys we cannot use are skipped (0). */
static int
jwks_add(struct bz_jwks *jwks, const json_t *jwk, char *err, size_t errlen)
{
	const char *kty = bz_json_str(jwk, "kty");
	const char *kid = bz_json_str(jwk, "kid");
	const char *use = bz_json_str(jwk, "use");
	const char *alg = bz_json_str(jwk, "alg");
	enum jwk_type type;
	EVP_PKEY *pkey;
	struct jwk *nk;
	char safe[64];

	if (!json_is_object(jwk) || kty == NULL || kid == NULL ||
	    kid[0] == '\0' || strlen(kid) > JWK_KID_MAX)
		return BZ_OK;
	if (use != NULL && strcmp(use, "sig") != 0)
		return BZ_OK;
	if (strcmp(kty, "RSA") == 0)
		type = JWK_RSA;
	else if (strcmp(kty, "EC") == 0)
		type = JWK_EC;
	else
		return BZ_OK;
	/* A JWK that names its alg may only be used with that alg. */
	if (alg != NULL && strcmp(alg, type == JWK_RSA ? "RS256" : "ES256"))
		return BZ_OK;
	if (jwks_find(jwks, kid) != NULL) {
		printable(kid, safe, sizeof(safe));
		bz_errf(err, errlen, "JWKS has duplicate key id \"%s\"", safe);
		return BZ_ERR_FORMAT;
	}
	if ((pkey = type == JWK_RSA ? jwk_rsa(jwk) : jwk_ec(jwk)) == NULL) {
		printable(kid, safe, sizeof(safe));
		bz_warn("JWKS: skipping unusable %s key \"%s\" (bad "
		    "parameters, other curve, or RSA under %d bits)", kty,
		    safe, RSA_MIN_BITS);
		return BZ_OK;
	}
	if ((nk = reallocarray(jwks->keys, jwks->n + 1, sizeof(*nk))) == NULL) {
		EVP_PKEY_free(pkey);
		return BZ_ERR_ALLOC;
	}
	jwks->keys = nk;
	nk[jwks->n].type = type;
	nk[jwks->n].pkey = pkey;
	if ((nk[jwks->n].kid = strdup(kid)) == NULL) {
		EVP_PKEY_free(pkey);
		return BZ_ERR_ALLOC;
	}
	jwks->n++;
	return BZ_OK;
}

int
bz_jwks_parse(const char *json, size_t len, struct bz_jwks **out,
    char *err, size_t errlen)
{
	struct bz_jwks *jwks = NULL;
	json_t *doc, *keys;
	char jerr[200];
	size_t i;
	int r = BZ_ERR_FORMAT;

	*out = NULL;
	if ((doc = bz_json_parse_object((const uint8_t *)json, len, jerr,
	    sizeof(jerr))) == NULL) {
		bz_errf(err, errlen, "JWKS: %s", jerr);
		return BZ_ERR_FORMAT;
	}
	keys = json_object_get(doc, "keys");
	if (!json_is_array(keys)) {
		bz_errf(err, errlen, "JWKS: no \"keys\" array");
		goto out;
	}
	if (json_array_size(keys) > JWKS_KEYS_MAX) {
		bz_errf(err, errlen, "JWKS: more than %d keys", JWKS_KEYS_MAX);
		goto out;
	}
	r = BZ_ERR_ALLOC;
	if ((jwks = calloc(1, sizeof(*jwks))) == NULL)
		goto out;
	for (i = 0; i < json_array_size(keys); i++)
		if ((r = jwks_add(jwks, json_array_get(keys, i), err,
		    errlen)) != 0)
			goto out;
	*out = jwks;
	jwks = NULL;
	r = BZ_OK;
 out:
	if (r == BZ_ERR_ALLOC)
		bz_errf(err, errlen, "JWKS: out of memory");
	bz_jwks_free(jwks);
	json_decref(doc);
	return r;
}

/* Next "."-separated segment; *sep tells whether a "." ended it. */
static void
next_segment(struct bz_buf *b, const uint8_t **p, size_t *n, int *sep)
{
	size_t before = bz_buf_avail(b);

	bz_buf_get_until(b, '.', p, n);
	*sep = before - bz_buf_avail(b) > *n;
}

/* Decode a base64url segment and parse it as a JSON object. */
static json_t *
segment_json(const uint8_t *p, size_t n, const char *what, char *err,
    size_t errlen)
{
	uint8_t *raw = NULL;
	size_t rawlen;
	char jerr[200];
	json_t *o;

	if (bz_b64url_decode((const char *)p, n, JWT_PART_MAX, &raw,
	    &rawlen) != 0) {
		bz_errf(err, errlen, "token %s is not valid base64url", what);
		return NULL;
	}
	if ((o = bz_json_parse_object(raw, rawlen, jerr, sizeof(jerr))) == NULL)
		bz_errf(err, errlen, "token %s: %s", what, jerr);
	free(raw);
	return o;
}

/* Convert a JWS ES256 signature (r || s, 32 bytes each) to DER. */
static int
es256_der(const uint8_t *sig, size_t len, uint8_t **der, size_t *derlen)
{
	struct bz_buf b;
	const uint8_t *rp, *sp;
	BIGNUM *r = NULL, *s = NULL;
	ECDSA_SIG *es = NULL;
	unsigned char *d = NULL;
	int dl, ret = BZ_ERR_FORMAT;

	*der = NULL;
	if (len != 64)
		return BZ_ERR_FORMAT;
	bz_buf_view(&b, sig, len);
	if (bz_buf_get_ptr(&b, &rp, 32) != 0 ||
	    bz_buf_get_ptr(&b, &sp, 32) != 0)
		return BZ_ERR_FORMAT;
	if ((r = BN_bin2bn(rp, 32, NULL)) == NULL ||
	    (s = BN_bin2bn(sp, 32, NULL)) == NULL ||
	    (es = ECDSA_SIG_new()) == NULL)
		goto out;
	if (!ECDSA_SIG_set0(es, r, s))
		goto out;
	r = s = NULL; /* owned by es now */
	if ((dl = i2d_ECDSA_SIG(es, &d)) <= 0)
		goto out;
	*der = d;
	*derlen = (size_t)dl;
	ret = BZ_OK;
 out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return ret;
}

/* Verify sig over msg with key (SHA-256; RSA is PKCS#1 v1.5). */
static int
verify_sig(const struct jwk *key, const uint8_t *msg, size_t msglen,
    const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *md = NULL;
	uint8_t *der = NULL;
	size_t derlen = 0;
	int ok = 0;

	if (key->type == JWK_EC) {
		if (es256_der(sig, siglen, &der, &derlen) != 0)
			return 0;
		sig = der;
		siglen = derlen;
	} else if (siglen != (size_t)EVP_PKEY_get_size(key->pkey))
		return 0;
	if ((md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    key->pkey) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, msg, msglen) == 1)
		ok = 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	return ok;
}

/* A NumericDate claim: 1 present (in *t), 0 absent, -1 not a date. */
static int
time_claim(const json_t *claims, const char *name, int64_t *t)
{
	json_t *v = json_object_get(claims, name);
	double d;

	if (v == NULL)
		return 0;
	if (json_is_integer(v)) {
		*t = (int64_t)json_integer_value(v);
	} else if (json_is_real(v)) {
		d = json_real_value(v);
		if (!isfinite(d) || d < -1e15 || d > 1e15)
			return -1;
		*t = (int64_t)d; /* rounds toward zero: make it floor */
		if ((double)*t > d)
			(*t)--;
	} else
		return -1;
	/* Bounded so now +- leeway arithmetic cannot overflow. */
	return (*t > -((int64_t)1 << 50) && *t < ((int64_t)1 << 50)) ? 1 : -1;
}

static int
audience_ok(const json_t *claims, const char *aud)
{
	json_t *v = json_object_get(claims, "aud"), *e;
	const char *azp = bz_json_str(claims, "azp");
	size_t i;
	int found = 0;

	if (json_is_string(v))
		found = strcmp(json_string_value(v), aud) == 0;
	else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if (json_is_string(e) &&
			    strcmp(json_string_value(e), aud) == 0)
				found = 1;
	}
	/* OIDC core 3.1.3.7: an azp, when present, must be our client id. */
	if (json_object_get(claims, "azp") != NULL &&
	    (azp == NULL || strcmp(azp, aud) != 0))
		return 0;
	return found;
}

static int
check_claims(const json_t *claims, const struct bz_jwt_expect *expect,
    char *err, size_t errlen)
{
	const char *iss = bz_json_str(claims, "iss");
	int64_t now = expect->now ? (int64_t)expect->now : (int64_t)time(NULL);
	int64_t t;
	int k;

	if (iss == NULL || strcmp(iss, expect->issuer) != 0) {
		bz_errf(err, errlen, "wrong issuer (iss)");
		return BZ_ERR_INVALID;
	}
	if (!audience_ok(claims, expect->audience)) {
		bz_errf(err, errlen, "wrong audience (aud): token is not for "
		    "client %s", expect->audience);
		return BZ_ERR_INVALID;
	}
	if ((k = time_claim(claims, "exp", &t)) <= 0) {
		bz_errf(err, errlen, k == 0 ? "token has no expiry (exp)" :
		    "token exp is not a valid date");
		return BZ_ERR_INVALID;
	}
	if (expect->login_max_age > 0) {
		/* a login's token: its age counts, not its expiry */
		if ((k = time_claim(claims, "iat", &t)) <= 0 ||
		    t + expect->login_max_age < now) {
			bz_errf(err, errlen, k <= 0 ? "login token has no valid "
			    "iat" : "login too old (run bzsshd login)");
			return BZ_ERR_INVALID;
		}
	} else if (t + BZ_JWT_LEEWAY < now) {
		bz_errf(err, errlen, "token expired");
		return BZ_ERR_INVALID;
	}
	if ((k = time_claim(claims, "nbf", &t)) == 1 &&
	    t - BZ_JWT_LEEWAY > now) {
		bz_errf(err, errlen, "token not yet valid (nbf in the future)");
		return BZ_ERR_INVALID;
	}
	if (k < 0) {
		bz_errf(err, errlen, "token nbf is not a valid date");
		return BZ_ERR_INVALID;
	}
	if ((k = time_claim(claims, "iat", &t)) == 1 &&
	    t - BZ_JWT_LEEWAY > now) {
		bz_errf(err, errlen, "token issued in the future (iat)");
		return BZ_ERR_INVALID;
	}
	if (k < 0) {
		bz_errf(err, errlen, "token iat is not a valid date");
		return BZ_ERR_INVALID;
	}
	if (expect->nonce != NULL) {
		const char *nonce = bz_json_str(claims, "nonce");
		if (nonce == NULL) {
			bz_errf(err, errlen, "token has no nonce");
			return BZ_ERR_INVALID;
		}
		if (!bz_secret_equal(nonce, expect->nonce)) {
			bz_errf(err, errlen, "token nonce does not match");
			return BZ_ERR_INVALID;
		}
	}
	return BZ_OK;
}

/* Header checks: alg allowed, kid known, alg matching the key's type. */
static int
check_header(const struct bz_jwks *jwks, const json_t *hdr,
    const struct jwk **key, char *err, size_t errlen)
{
	const char *alg = bz_json_str(hdr, "alg");
	const char *kid = bz_json_str(hdr, "kid");
	char safe[64];
	enum jwk_type want;

	if (alg == NULL) {
		bz_errf(err, errlen, "token header has no algorithm (alg)");
		return BZ_ERR_INVALID;
	}
	if (strcmp(alg, "RS256") == 0)
		want = JWK_RSA;
	else if (strcmp(alg, "ES256") == 0)
		want = JWK_EC;
	else {
		printable(alg, safe, sizeof(safe));
		bz_errf(err, errlen, "algorithm %s is not allowed", safe);
		return BZ_ERR_INVALID;
	}
	/* We understand no JWS extensions (RFC 7515 4.1.11). */
	if (json_object_get(hdr, "crit") != NULL) {
		bz_errf(err, errlen, "token header has unsupported \"crit\"");
		return BZ_ERR_INVALID;
	}
	if (kid == NULL) {
		bz_errf(err, errlen, "token header has no key id (kid)");
		return BZ_ERR_INVALID;
	}
	if ((*key = jwks_find(jwks, kid)) == NULL) {
		printable(kid, safe, sizeof(safe));
		bz_errf(err, errlen, "unknown key id (kid) \"%s\"", safe);
		return BZ_ERR_INVALID;
	}
	if ((*key)->type != want) {
		printable(kid, safe, sizeof(safe));
		bz_errf(err, errlen, "algorithm %s does not match the %s key "
		    "\"%s\"", alg, type_name((*key)->type), safe);
		return BZ_ERR_INVALID;
	}
	return BZ_OK;
}

int
bz_jwt_verify(const struct bz_jwks *jwks, const char *token,
    const struct bz_jwt_expect *expect, json_t **claims, char *err,
    size_t errlen)
{
	struct bz_buf b;
	const uint8_t *hp, *pp, *sp;
	size_t hn, pn, sn, tlen, siglen = 0;
	uint8_t *sig = NULL;
	json_t *hdr = NULL, *payload = NULL;
	const struct jwk *key = NULL;
	int hs, ps, ss, r = BZ_ERR_INVALID;

	*claims = NULL;
	if (jwks == NULL || token == NULL || expect == NULL ||
	    expect->issuer == NULL || expect->audience == NULL) {
		bz_errf(err, errlen, "invalid arguments");
		return BZ_ERR_INVALID;
	}
	if ((tlen = strnlen(token, BZ_JWT_MAX_LEN + 1)) > BZ_JWT_MAX_LEN) {
		bz_errf(err, errlen, "token too long (max %u bytes)",
		    BZ_JWT_MAX_LEN);
		return BZ_ERR_TOO_BIG;
	}
	bz_buf_view(&b, token, tlen);
	next_segment(&b, &hp, &hn, &hs);
	next_segment(&b, &pp, &pn, &ps);
	next_segment(&b, &sp, &sn, &ss);
	if (!hs || !ps || ss) {
		bz_errf(err, errlen, "token must have three segments");
		return BZ_ERR_FORMAT;
	}
	if ((hdr = segment_json(hp, hn, "header", err, errlen)) == NULL ||
	    (payload = segment_json(pp, pn, "payload", err, errlen)) == NULL) {
		r = BZ_ERR_FORMAT;
		goto out;
	}
	if ((r = check_header(jwks, hdr, &key, err, errlen)) != 0)
		goto out;
	if (sn == 0 || bz_b64url_decode((const char *)sp, sn, JWT_SIG_MAX, &sig,
	    &siglen) != 0) {
		bz_errf(err, errlen, "token signature is not valid base64url");
		r = BZ_ERR_FORMAT;
		goto out;
	}
	/* The signing input is the token's first two segments and their dot. */
	if (!verify_sig(key, (const uint8_t *)token, hn + 1 + pn, sig,
	    siglen)) {
		bz_errf(err, errlen, "bad token signature");
		r = BZ_ERR_INVALID;
		goto out;
	}
	if ((r = check_claims(payload, expect, err, errlen)) != 0)
		goto out;
	*claims = payload;
	payload = NULL;
	r = BZ_OK;
 out:
	free(sig);
	json_decref(hdr);
	json_decref(payload);
	return r;
}

int
bz_jwt_same_login(const json_t *login, const json_t *current, char *err,
    size_t errlen)
{
	const char *a = bz_json_str(login, "sub"), *b = bz_json_str(current,
	    "sub");
	int64_t ta, tb;
	int ka, kb;

	if (a == NULL || b == NULL || strcmp(a, b) != 0) {
		bz_errf(err, errlen, "the ID token is for another subject "
		    "(sub) than the login's");
		return BZ_ERR_INVALID;
	}
	ka = time_claim(login, "auth_time", &ta);
	kb = time_claim(current, "auth_time", &tb);
	if (ka < 0 || kb < 0 || (ka == 1 && kb == 1 && ta != tb)) {
		bz_errf(err, errlen, "the ID token comes from another "
		    "authentication (auth_time) than the login's");
		return BZ_ERR_INVALID;
	}
	return BZ_OK;
}
