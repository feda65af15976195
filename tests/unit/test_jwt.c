/*
 * test_jwt.c: ID-token verification. Keys are generated here with OpenSSL,
 * the JWKS is built from them and tokens are signed here, so every
 * rejection rule in jwt.h is exercised against real signatures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "jwt.h"
#include "util.h"

#define NOW ((time_t)1700000000)
#define ISS "https://idp.example"
#define AUD "bz-cli"

struct keys {
	EVP_PKEY *rsa;      /* kid "rsa1" */
	EVP_PKEY *ec;       /* kid "ec1" */
	EVP_PKEY *rsa_other;
	EVP_PKEY *ec_other;
	EVP_PKEY *rsa_weak; /* 1024 bits */
	struct bz_jwks *jwks;
};

static struct keys K;

static char *
b64(const void *p, size_t n)
{
	char *s;

	assert_int_equal(bz_b64url_encode(p, n, &s), 0);
	return s;
}

static char *
bn_b64(const EVP_PKEY *k, const char *param)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
	n = BN_bn2bin(bn, buf);
	BN_free(bn);
	return b64(buf, (size_t)n);
}

static json_t *
rsa_jwk(const EVP_PKEY *k, const char *kid)
{
	char *n = bn_b64(k, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64(k,
	    OSSL_PKEY_PARAM_RSA_E);
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "kid",
	    kid, "use", "sig", "alg", "RS256", "n", n, "e", e);

	free(n);
	free(e);
	return j;
}

static json_t *
ec_jwk(const EVP_PKEY *k, const char *kid)
{
	uint8_t pub[65];
	size_t len = 0;
	char *x, *y;
	json_t *j;

	assert_int_equal(EVP_PKEY_get_octet_string_param(k,
	    OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
	assert_int_equal(len, 65);
	assert_int_equal(pub[0], 4);
	x = b64(pub + 1, 32);
	y = b64(pub + 33, 32);
	j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "EC", "kid", kid, "crv",
	    "P-256", "x", x, "y", y);
	free(x);
	free(y);
	return j;
}

static int
setup(void **state)
{
	json_t *doc;
	char *text, err[256];

	K.rsa = EVP_RSA_gen(2048);
	K.rsa_other = EVP_RSA_gen(2048);
	K.rsa_weak = EVP_RSA_gen(1024);
	K.ec = EVP_EC_gen("P-256");
	K.ec_other = EVP_EC_gen("P-256");
	if (!K.rsa || !K.rsa_other || !K.rsa_weak || !K.ec || !K.ec_other)
		return -1;
	doc = json_pack("{s:[o,o,o,{s:s,s:s,s:s}]}", "keys",
	    rsa_jwk(K.rsa, "rsa1"), ec_jwk(K.ec, "ec1"),
	    rsa_jwk(K.rsa_weak, "weak"),
	    "kty", "oct", "kid", "hmac", "k", "c2VjcmV0");
	text = json_dumps(doc, 0);
	json_decref(doc);
	if (bz_jwks_parse(text, strlen(text), &K.jwks, err, sizeof(err)) != 0) {
		fprintf(stderr, "jwks: %s\n", err);
		free(text);
		return -1;
	}
	free(text);
	return 0;
}

static int
teardown(void **state)
{
	bz_jwks_free(K.jwks);
	EVP_PKEY_free(K.rsa);
	EVP_PKEY_free(K.rsa_other);
	EVP_PKEY_free(K.rsa_weak);
	EVP_PKEY_free(K.ec);
	EVP_PKEY_free(K.ec_other);
	return 0;
}

enum signer { SIGN_RSA, SIGN_EC, SIGN_HMAC_PUBKEY, SIGN_NONE, SIGN_EC_DER };

/* Signature over input by key in the JWS form for signer. */
static char *
sign(enum signer how, EVP_PKEY *key, const char *input)
{
	uint8_t sig[1024], raw[64], *der = sig;
	size_t siglen = sizeof(sig);
	unsigned int hlen = 0;
	EVP_MD_CTX *md;
	ECDSA_SIG *es;
	const BIGNUM *r, *s;
	const unsigned char *dp;
	BIO *bio;
	char *pem;
	long pemlen;

	switch (how) {
	case SIGN_NONE:
		return strdup("");
	case SIGN_HMAC_PUBKEY:
		/* The classic confusion: HMAC keyed with the RSA public key. */
		bio = BIO_new(BIO_s_mem());
		assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
		pemlen = BIO_get_mem_data(bio, &pem);
		HMAC(EVP_sha256(), pem, (int)pemlen, (const uint8_t *)input,
		    strlen(input), sig, &hlen);
		BIO_free(bio);
		return b64(sig, hlen);
	default:
		break;
	}
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key),
	    1);
	assert_int_equal(EVP_DigestSign(md, sig, &siglen,
	    (const uint8_t *)input, strlen(input)), 1);
	EVP_MD_CTX_free(md);
	if (how != SIGN_EC)
		return b64(der, siglen);
	/* JWS ES256 is r || s, 32 bytes each, not DER. */
	dp = sig;
	es = d2i_ECDSA_SIG(NULL, &dp, (long)siglen);
	assert_non_null(es);
	ECDSA_SIG_get0(es, &r, &s);
	assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
	assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
	ECDSA_SIG_free(es);
	return b64(raw, 64);
}

/* header.payload.signature from JSON texts. */
static char *
token(const char *header, const char *payload, enum signer how,
    EVP_PKEY *key)
{
	char *h = b64(header, strlen(header)), *p = b64(payload,
	    strlen(payload)), *input, *sig, *t;

	assert_true(asprintf(&input, "%s.%s", h, p) > 0);
	sig = sign(how, key, input);
	assert_true(asprintf(&t, "%s.%s", input, sig) > 0);
	free(h);
	free(p);
	free(input);
	free(sig);
	return t;
}

/* Claims for NOW, with one member replaced or added by extra (JSON). */
static char *
claims(const char *extra)
{
	json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "iss", ISS,
	    "aud", AUD, "sub", "alice", "email", "alice@example.com", "iat",
	    (json_int_t)NOW - 10, "nbf", (json_int_t)NOW - 10, "exp",
	    (json_int_t)NOW + 300);
	json_t *x;
	char *s;

	if (extra != NULL) {
		x = json_loads(extra, 0, NULL);
		assert_non_null(x);
		assert_int_equal(json_object_update(c, x), 0);
		json_decref(x);
	}
	s = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	return s;
}

#define RS_HDR "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"JWT\"}"
#define ES_HDR "{\"alg\":\"ES256\",\"kid\":\"ec1\"}"

/* Verify tok; expect success (want NULL) or an error containing want. */
static void
check(const char *tok, const char *nonce, const char *want)
{
	struct bz_jwt_expect ex = { ISS, AUD, nonce, NOW, 0 };
	json_t *c = (json_t *)1;
	char err[256] = "";
	int r;

	r = bz_jwt_verify(K.jwks, tok, &ex, &c, err, sizeof(err));
	if (want == NULL) {
		if (r != 0)
			fail_msg("unexpected rejection: %s", err);
		assert_non_null(c);
		assert_string_equal(bz_json_str(c, "sub"), "alice");
		json_decref(c);
		return;
	}
	assert_true(r < 0);
	assert_null(c);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

/* Sign claims with extra under the RSA key and check. */
static void
check_claims(const char *extra, const char *nonce, const char *want)
{
	char *c = claims(extra), *t = token(RS_HDR, c, SIGN_RSA, K.rsa);

	check(t, nonce, want);
	free(t);
	free(c);
}

static void
test_jwks(void **state)
{
	struct bz_jwks *j;
	char err[256];

	/* rsa1 and ec1; the 1024-bit RSA and the oct key are skipped. */
	assert_int_equal(bz_jwks_count(K.jwks), 2);
#define PARSE(s) bz_jwks_parse(s, strlen(s), &j, err, sizeof(err))
	assert_int_equal(PARSE("{\"keys\":[]}"), 0);
	assert_int_equal(bz_jwks_count(j), 0);
	bz_jwks_free(j);
	assert_int_equal(PARSE("{\"nokeys\":[]}"), BZ_ERR_FORMAT);
	assert_string_equal(err, "JWKS: no \"keys\" array");
	assert_int_equal(PARSE("[]"), BZ_ERR_FORMAT);
	assert_int_equal(PARSE("{\"keys\":[],\"keys\":[]}"), BZ_ERR_FORMAT);
	assert_non_null(strstr(err, "duplicate"));
	/* Unusable EC keys: wrong curve, point not on the curve, short x. */
	assert_int_equal(PARSE("{\"keys\":[{\"kty\":\"EC\",\"kid\":\"a\","
	    "\"crv\":\"P-384\",\"x\":\"AAAA\",\"y\":\"AAAA\"},"
	    "{\"kty\":\"EC\",\"kid\":\"b\",\"crv\":\"P-256\","
	    "\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	    "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},"
	    "{\"kty\":\"EC\",\"kid\":\"c\",\"crv\":\"P-256\",\"x\":\"AQ\","
	    "\"y\":\"AQ\"},"
	    "{\"kty\":\"RSA\",\"kid\":\"d\",\"n\":\"not base64!\","
	    "\"e\":\"AQAB\"},"
	    "{\"kty\":\"RSA\",\"kid\":\"e\",\"use\":\"enc\",\"n\":\"AQAB\","
	    "\"e\":\"AQAB\"}]}"), 0);
	assert_int_equal(bz_jwks_count(j), 0);
	bz_jwks_free(j);
#undef PARSE
}

static void
test_jwks_duplicate_kid(void **state)
{
	struct bz_jwks *j = (struct bz_jwks *)1;
	json_t *doc = json_pack("{s:[o,o]}", "keys", rsa_jwk(K.rsa, "same"),
	    ec_jwk(K.ec, "same"));
	char *text = json_dumps(doc, 0), err[256];

	assert_int_equal(bz_jwks_parse(text, strlen(text), &j, err,
	    sizeof(err)), BZ_ERR_FORMAT);
	assert_null(j);
	assert_string_equal(err, "JWKS has duplicate key id \"same\"");
	free(text);
	json_decref(doc);
}

static void
test_ok(void **state)
{
	char *c = claims(NULL), *t;

	t = token(RS_HDR, c, SIGN_RSA, K.rsa);
	check(t, NULL, NULL);
	free(t);
	t = token(ES_HDR, c, SIGN_EC, K.ec);
	check(t, NULL, NULL);
	free(t);
	free(c);
	/* aud as an array holding our client id; azp naming us. */
	check_claims("{\"aud\":[\"other\",\"bz-cli\"],\"azp\":\"bz-cli\"}",
	    NULL, NULL);
	/* Within the leeway on each side. */
	check_claims("{\"exp\":1699999941}", NULL, NULL);
	check_claims("{\"nbf\":1700000059,\"iat\":1700000059}", NULL, NULL);
	/* No nbf/iat at all is fine; exp as a real number too. */
	check_claims("{\"exp\":1700000300.5}", NULL, NULL);
}

static void
test_alg_rejected(void **state)
{
	char *c = claims(NULL), *t;

	t = token("{\"alg\":\"none\",\"kid\":\"rsa1\"}", c, SIGN_NONE, NULL);
	check(t, NULL, "algorithm none is not allowed");
	free(t);
	t = token("{\"alg\":\"none\"}", c, SIGN_NONE, NULL);
	check(t, NULL, "algorithm none is not allowed");
	free(t);
	t = token("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", c, SIGN_HMAC_PUBKEY,
	    K.rsa);
	check(t, NULL, "algorithm HS256 is not allowed");
	free(t);
	t = token("{\"alg\":\"HS256\",\"kid\":\"hmac\"}", c, SIGN_HMAC_PUBKEY,
	    K.rsa);
	check(t, NULL, "algorithm HS256 is not allowed");
	free(t);
	t = token("{\"alg\":\"RS384\",\"kid\":\"rsa1\"}", c, SIGN_RSA, K.rsa);
	check(t, NULL, "algorithm RS384 is not allowed");
	free(t);
	t = token("{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", c, SIGN_RSA, K.rsa);
	check(t, NULL, "algorithm PS256 is not allowed");
	free(t);
	t = token("{\"alg\":\"rs256\",\"kid\":\"rsa1\"}", c, SIGN_RSA, K.rsa);
	check(t, NULL, "algorithm rs256 is not allowed");
	free(t);
	t = token("{\"kid\":\"rsa1\"}", c, SIGN_RSA, K.rsa);
	check(t, NULL, "no algorithm (alg)");
	free(t);
	t = token("{\"alg\":256,\"kid\":\"rsa1\"}", c, SIGN_RSA, K.rsa);
	check(t, NULL, "no algorithm (alg)");
	free(t);
	t = token("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"x\"]}", c,
	    SIGN_RSA, K.rsa);
	check(t, NULL, "crit");
	free(t);
	free(c);
}

static void
test_alg_key_mismatch(void **state)
{
	char *c = claims(NULL), *t;

	/* An ES256 signature presented as RS256 under the EC key's kid. */
	t = token("{\"alg\":\"RS256\",\"kid\":\"ec1\"}", c, SIGN_EC, K.ec);
	check(t, NULL, "algorithm RS256 does not match the EC key \"ec1\"");
	free(t);
	t = token("{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", c, SIGN_RSA, K.rsa);
	check(t, NULL, "algorithm ES256 does not match the RSA key \"rsa1\"");
	free(t);
	free(c);
}

static void
test_kid(void **state)
{
	char *c = claims(NULL), *t;

	t = token("{\"alg\":\"RS256\"}", c, SIGN_RSA, K.rsa);
	check(t, NULL, "token header has no key id (kid)");
	free(t);
	t = token("{\"alg\":\"RS256\",\"kid\":\"nope\"}", c, SIGN_RSA, K.rsa);
	check(t, NULL, "unknown key id (kid) \"nope\"");
	free(t);
	/* The skipped weak key is unknown too. */
	t = token("{\"alg\":\"RS256\",\"kid\":\"weak\"}", c, SIGN_RSA,
	    K.rsa_weak);
	check(t, NULL, "unknown key id (kid) \"weak\"");
	free(t);
	free(c);
}

static void
test_bad_signature(void **state)
{
	char *c = claims(NULL), *c2, *t, *t2, *dot;

	/* Another key, same kid. */
	t = token(RS_HDR, c, SIGN_RSA, K.rsa_other);
	check(t, NULL, "bad token signature");
	free(t);
	t = token(ES_HDR, c, SIGN_EC, K.ec_other);
	check(t, NULL, "bad token signature");
	free(t);
	/* ES256 with a DER signature instead of r||s. */
	t = token(ES_HDR, c, SIGN_EC_DER, K.ec);
	check(t, NULL, "bad token signature");
	free(t);
	/* A payload swapped under a valid signature. */
	c2 = claims("{\"sub\":\"mallory\"}");
	t = token(RS_HDR, c, SIGN_RSA, K.rsa);
	t2 = token(RS_HDR, c2, SIGN_RSA, K.rsa);
	dot = strrchr(t, '.');
	memcpy(strrchr(t2, '.'), dot, strlen(dot)); /* same length sig */
	check(t2, NULL, "bad token signature");
	/* Missing signature. */
	*(strrchr(t, '.') + 1) = '\0';
	check(t, NULL, "signature is not valid base64url");
	free(t);
	free(t2);
	free(c2);
	free(c);
}

static void
test_claims_rejected(void **state)
{
	check_claims("{\"iss\":\"https://evil.example\"}", NULL,
	    "wrong issuer (iss)");
	check_claims("{\"iss\":\"https://idp.example/\"}", NULL,
	    "wrong issuer (iss)");
	check_claims("{\"iss\":null}", NULL, "wrong issuer (iss)");
	check_claims("{\"aud\":\"other\"}", NULL, "wrong audience (aud)");
	check_claims("{\"aud\":[\"other\",\"x\"]}", NULL,
	    "wrong audience (aud)");
	check_claims("{\"aud\":[]}", NULL, "wrong audience (aud)");
	check_claims("{\"aud\":null}", NULL, "wrong audience (aud)");
	check_claims("{\"aud\":[\"bz-cli\"],\"azp\":\"other\"}", NULL,
	    "wrong audience (aud)");
	check_claims("{\"exp\":1699999939}", NULL, "token expired");
	check_claims("{\"exp\":null}", NULL, "token exp is not a valid date");
	check_claims("{\"exp\":\"1800000000\"}", NULL,
	    "token exp is not a valid date");
	check_claims("{\"nbf\":null}", NULL, "token nbf is not a valid date");
	check_claims("{\"iat\":[1]}", NULL, "token iat is not a valid date");
	check_claims("{\"nbf\":1700000061}", NULL,
	    "token not yet valid (nbf in the future)");
	check_claims("{\"iat\":1700000061}", NULL,
	    "token issued in the future (iat)");
	check_claims("{\"exp\":9223372036854775807}", NULL,
	    "token exp is not a valid date");
}

static void
test_missing_exp(void **state)
{
	json_t *c = json_pack("{s:s,s:s,s:s}", "iss", ISS, "aud", AUD, "sub",
	    "alice");
	char *s = json_dumps(c, 0), *t = token(RS_HDR, s, SIGN_RSA, K.rsa);

	check(t, NULL, "token has no expiry (exp)");
	free(t);
	free(s);
	json_decref(c);
}

static void
test_nonce(void **state)
{
	check_claims("{\"nonce\":\"n-123\"}", "n-123", NULL);
	check_claims("{\"nonce\":\"n-123\"}", NULL, NULL);
	check_claims(NULL, "n-123", "token has no nonce");
	check_claims("{\"nonce\":\"n-124\"}", "n-123",
	    "token nonce does not match");
	check_claims("{\"nonce\":\"n-12\"}", "n-123",
	    "token nonce does not match");
	check_claims("{\"nonce\":7}", "n-123", "token has no nonce");
}

/* A login's token, kept for the key its nonce binds: expired is fine,
 * old is not. */
static void
test_login_token(void **state)
{
	struct bz_jwt_expect ex = { ISS, AUD, "n-1", NOW, 3600 };
	char *c, *t, err[256] = "";
	json_t *cl = NULL, *login, *cur;

	(void)state;
	c = claims("{\"nonce\":\"n-1\",\"exp\":1699990000,"
	    "\"iat\":1699997000}");
	t = token(RS_HDR, c, SIGN_RSA, K.rsa);
	assert_int_equal(bz_jwt_verify(K.jwks, t, &ex, &cl, err, sizeof(err)),
	    0);
	json_decref(cl);
	ex.login_max_age = 60; /* issued 3000 s ago */
	assert_true(bz_jwt_verify(K.jwks, t, &ex, &cl, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "login too old"));
	free(t);
	free(c);
	/* no iat: no age */
	ex.login_max_age = 3600;
	c = claims("{\"nonce\":\"n-1\",\"iat\":null}");
	t = token(RS_HDR, c, SIGN_RSA, K.rsa);
	assert_true(bz_jwt_verify(K.jwks, t, &ex, &cl, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "no valid iat"));
	free(t);
	free(c);
	/* the same login: same sub, same auth_time when both have one */
	login = json_pack("{s:s, s:i}", "sub", "alice", "auth_time", 100);
	cur = json_pack("{s:s}", "sub", "alice");
	assert_int_equal(bz_jwt_same_login(login, cur, err, sizeof(err)), 0);
	json_object_set_new(cur, "auth_time", json_integer(100));
	assert_int_equal(bz_jwt_same_login(login, cur, err, sizeof(err)), 0);
	json_object_set_new(cur, "auth_time", json_integer(101));
	assert_true(bz_jwt_same_login(login, cur, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "auth_time"));
	json_object_set_new(cur, "auth_time", json_integer(100));
	json_object_set_new(cur, "sub", json_string("mallory"));
	assert_true(bz_jwt_same_login(login, cur, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "sub"));
	json_object_del(cur, "sub");
	assert_true(bz_jwt_same_login(login, cur, err, sizeof(err)) < 0);
	json_decref(login);
	json_decref(cur);
}

static void
test_structure(void **state)
{
	char *c = claims(NULL), *t, *big;
	size_t n;

	check("abc", NULL, "token must have three segments");
	check("a.b", NULL, "token must have three segments");
	check("a.b.c.d", NULL, "token must have three segments");
	check("", NULL, "token must have three segments");
	check("..", NULL, "token header");
	t = token(RS_HDR, c, SIGN_RSA, K.rsa);
	/* Four segments: a valid token with one more. */
	big = malloc(strlen(t) + 3);
	sprintf(big, "%s.x", t);
	check(big, NULL, "token must have three segments");
	free(big);
	/* Bad base64 in each part. */
	big = strdup(t);
	big[0] = '+';
	check(big, NULL, "token header is not valid base64url");
	free(big);
	big = strdup(t);
	*(strchr(big, '.') + 1) = '=';
	check(big, NULL, "token payload is not valid base64url");
	free(big);
	big = malloc(strlen(t) + 2);
	sprintf(big, "%s=", t);
	check(big, NULL, "signature is not valid base64url");
	free(big);
	/* Header that is JSON but not an object, or not JSON. */
	free(t);
	t = token("[1]", c, SIGN_RSA, K.rsa);
	check(t, NULL, "token header:");
	free(t);
	t = token(RS_HDR, "not json", SIGN_RSA, K.rsa);
	check(t, NULL, "token payload: invalid JSON");
	free(t);
	t = token("{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"rsa1\"}", c,
	    SIGN_RSA, K.rsa);
	check(t, NULL, "duplicate");
	free(t);
	/* Longer than BZ_JWT_MAX_LEN, even if otherwise valid. */
	n = BZ_JWT_MAX_LEN + 1;
	big = malloc(n + 1);
	memset(big, 'A', n);
	big[n] = '\0';
	big[10] = big[20] = '.';
	check(big, NULL, "token too long");
	/* Exactly at the limit is parsed (and fails later). */
	big[n - 1] = '\0';
	check(big, NULL, "token header: invalid JSON");
	free(big);
	free(c);
}

static void
test_fetch_refuses(void **state)
{
	struct bz_jwks *j = (struct bz_jwks *)1;
	char err[256];

	assert_int_equal(bz_jwks_fetch("http://idp.example", NULL, &j, err,
	    sizeof(err)), BZ_ERR_INVALID);
	assert_null(j);
	assert_string_equal(err, "OIDC issuer must be an https URL");
	/* Nothing listens on port 1: a clear error, no hang. */
	assert_int_equal(bz_jwks_fetch("https://127.0.0.1:1", NULL, &j, err,
	    sizeof(err)), BZ_ERR_INVALID);
	assert_non_null(strstr(err,
	    "GET https://127.0.0.1:1/.well-known/openid-configuration"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwks),
		cmocka_unit_test(test_jwks_duplicate_kid),
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_alg_rejected),
		cmocka_unit_test(test_alg_key_mismatch),
		cmocka_unit_test(test_kid),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_claims_rejected),
		cmocka_unit_test(test_missing_exp),
		cmocka_unit_test(test_nonce),
		cmocka_unit_test(test_login_token),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_fetch_refuses),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
