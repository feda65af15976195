/*
 * config.c: strict YAML config files through libyaml's event parser, so
 * every error can name file:line:column; see config.h.
 */
#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "buf.h"
#include "util.h"

#define CONFIG_FILE_MAX (1024u * 1024)
#define CONFIG_KEY_MAX 256
#define CONFIG_DEPTH_MAX 8
#define CONFIG_ITEMS_MAX 1024

struct kv {
	char *key;
	char *value; /* NULL for a key holding a nested mapping */
};

struct bz_config {
	char *path;
	char *dir;   /* absolute when it could be resolved */
	struct kv *items;
	size_t n;
};

struct parse {
	const char *path;
	const char *const *known;
	struct bz_config *cfg;
	yaml_parser_t parser;
	char *err;
	size_t errlen;
};

static int fail_at(struct parse *, yaml_mark_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail_at(struct parse *ps, yaml_mark_t m, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bz_errf(ps->err, ps->errlen, "%s:%zu:%zu: %s", ps->path, m.line + 1,
	    m.column + 1, msg);
	return BZ_ERR_FORMAT;
}

/* Next event, or a parser error with its position. */
static int
next_event(struct parse *ps, yaml_event_t *ev)
{
	if (yaml_parser_parse(&ps->parser, ev))
		return BZ_OK;
	return fail_at(ps, ps->parser.problem_mark, "%s",
	    ps->parser.problem ? ps->parser.problem : "YAML syntax error");
}

/* Reject the YAML features we never want in a config file. */
static int
check_plain_node(struct parse *ps, const yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return fail_at(ps, ev->start_mark, "%s",
		    "aliases are not allowed");
	case YAML_SEQUENCE_START_EVENT:
		return fail_at(ps, ev->start_mark, "%s",
		    "sequences are not allowed");
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	default:
		return fail_at(ps, ev->start_mark, "%s",
		    "unexpected YAML event");
	}
	if (anchor != NULL)
		return fail_at(ps, ev->start_mark, "%s",
		    "anchors are not allowed");
	if (tag != NULL)
		return fail_at(ps, ev->start_mark, "%s",
		    "tags are not allowed");
	return BZ_OK;
}

/* 2: key is a known setting, 1: it prefixes known settings, 0: unknown. */
static int
key_kind(const struct parse *ps, const char *key)
{
	size_t i, len = strlen(key);
	int kind = 0;

	for (i = 0; ps->known[i] != NULL; i++) {
		if (strcmp(ps->known[i], key) == 0)
			return 2;
		if (strncmp(ps->known[i], key, len) == 0 &&
		    ps->known[i][len] == '.')
			kind = 1;
	}
	return kind;
}

static const struct kv *
find(const struct bz_config *cfg, const char *key)
{
	size_t i;

	for (i = 0; i < cfg->n; i++)
		if (strcmp(cfg->items[i].key, key) == 0)
			return &cfg->items[i];
	return NULL;
}

/* Take ownership of key and value (value may be NULL). */
static int
add_item(struct bz_config *cfg, char *key, char *value)
{
	struct kv *n;

	if (cfg->n >= CONFIG_ITEMS_MAX ||
	    (n = reallocarray(cfg->items, cfg->n + 1, sizeof(*n))) == NULL) {
		free(key);
		free(value);
		return BZ_ERR_ALLOC;
	}
	cfg->items = n;
	cfg->items[cfg->n].key = key;
	cfg->items[cfg->n].value = value;
	cfg->n++;
	return BZ_OK;
}

static int parse_mapping(struct parse *ps, const char *prefix, int depth);

/* One "key: value" pair whose key event is kev. */
static int
parse_pair(struct parse *ps, const yaml_event_t *kev, const char *prefix,
    int depth)
{
	yaml_event_t vev;
	const char *k = (const char *)kev->data.scalar.value;
	size_t klen = kev->data.scalar.length;
	char *full = NULL, *value = NULL;
	int r, kind, have_ev = 0;

	if (klen == 0 || memchr(k, '\0', klen) != NULL)
		return fail_at(ps, kev->start_mark, "%s", "invalid empty key");
	if (klen > CONFIG_KEY_MAX)
		return fail_at(ps, kev->start_mark, "%s", "key too long");
	if (asprintf(&full, "%s%s%.*s", prefix, *prefix ? "." : "", (int)klen,
	    k) < 0)
		return BZ_ERR_ALLOC;
	if ((kind = key_kind(ps, full)) == 0) {
		r = fail_at(ps, kev->start_mark, "unknown setting \"%s\"",
		    full);
		goto out;
	}
	if (find(ps->cfg, full) != NULL) {
		r = fail_at(ps, kev->start_mark, "duplicate setting \"%s\"",
		    full);
		goto out;
	}
	if ((r = next_event(ps, &vev)) != 0)
		goto out;
	have_ev = 1;
	if ((r = check_plain_node(ps, &vev)) != 0)
		goto out;
	if (vev.type == YAML_MAPPING_START_EVENT) {
		if (kind != 1) {
			r = fail_at(ps, vev.start_mark, "\"%s\" takes a single "
			    "value, not a mapping", full);
			goto out;
		}
		if (depth >= CONFIG_DEPTH_MAX) {
			r = fail_at(ps, vev.start_mark, "%s",
			    "nested too deep");
			goto out;
		}
		if ((r = add_item(ps->cfg, full, NULL)) != 0) {
			full = NULL;
			goto out;
		}
		r = parse_mapping(ps, ps->cfg->items[ps->cfg->n - 1].key,
		    depth + 1);
		full = NULL;
		goto out;
	}
	/* A scalar. */
	if (kind != 2) {
		r = fail_at(ps, vev.start_mark, "\"%s\" needs nested settings, "
		    "not a single value", full);
		goto out;
	}
	if (vev.data.scalar.length == 0 &&
	    vev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		r = fail_at(ps, vev.start_mark, "\"%s\" has no value", full);
		goto out;
	}
	if (memchr(vev.data.scalar.value, '\0', vev.data.scalar.length)) {
		r = fail_at(ps, vev.start_mark, "\"%s\" contains a NUL byte",
		    full);
		goto out;
	}
	r = BZ_ERR_ALLOC;
	if ((value = strndup((const char *)vev.data.scalar.value,
	    vev.data.scalar.length)) == NULL)
		goto out;
	r = add_item(ps->cfg, full, value);
	full = value = NULL;
 out:
	if (have_ev)
		yaml_event_delete(&vev);
	free(full);
	free(value);
	return r;
}

/* Parse pairs after a MAPPING_START, through its MAPPING_END. */
static int
parse_mapping(struct parse *ps, const char *prefix, int depth)
{
	yaml_event_t ev;
	int r;

	for (;;) {
		if ((r = next_event(ps, &ev)) != 0)
			return r;
		if (ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			return BZ_OK;
		}
		if ((r = check_plain_node(ps, &ev)) == 0 &&
		    ev.type != YAML_SCALAR_EVENT)
			r = fail_at(ps, ev.start_mark, "%s",
			    "keys must be plain scalars");
		if (r == 0)
			r = parse_pair(ps, &ev, prefix, depth);
		yaml_event_delete(&ev);
		if (r != 0)
			return r;
	}
}

/* STREAM_START [DOCUMENT_START MAPPING ... DOCUMENT_END] STREAM_END */
static int
parse_stream(struct parse *ps)
{
	yaml_event_t ev;
	int r, docs = 0;

	for (;;) {
		if ((r = next_event(ps, &ev)) != 0)
			return r;
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_STREAM_END_EVENT:
			yaml_event_delete(&ev);
			return BZ_OK;
		case YAML_DOCUMENT_START_EVENT:
			if (docs++ > 0)
				r = fail_at(ps, ev.start_mark, "%s",
				    "multiple documents are not allowed");
			break;
		case YAML_MAPPING_START_EVENT:
			if ((r = check_plain_node(ps, &ev)) == 0)
				r = parse_mapping(ps, "", 1);
			break;
		default:
			if ((r = check_plain_node(ps, &ev)) == 0)
				r = fail_at(ps, ev.start_mark, "%s",
				    "the top level must be a mapping");
			break;
		}
		yaml_event_delete(&ev);
		if (r != 0)
			return r;
	}
}

static char *
config_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir, *abs;

	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	/* Absolute, so paths stay right if the program changes directory. */
	if (dir != NULL && (abs = realpath(dir, NULL)) != NULL) {
		free(dir);
		dir = abs;
	}
	return dir;
}

int
bz_config_load(const char *path, const char *const *known_keys,
    struct bz_config **out, char *err, size_t errlen)
{
	struct parse ps;
	struct bz_config *cfg = NULL;
	uint8_t *text = NULL;
	size_t len;
	int r, parser_ok = 0;

	*out = NULL;
	memset(&ps, 0, sizeof(ps));
	if ((r = bz_read_file(path, CONFIG_FILE_MAX, &text, &len, err,
	    errlen)) != 0)
		return r;
	r = BZ_ERR_ALLOC;
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL ||
	    (cfg->path = strdup(path)) == NULL ||
	    (cfg->dir = config_dir(path)) == NULL)
		goto out;
	if (!yaml_parser_initialize(&ps.parser))
		goto out;
	parser_ok = 1;
	yaml_parser_set_input_string(&ps.parser, text, len);
	ps.path = path;
	ps.known = known_keys;
	ps.cfg = cfg;
	ps.err = err;
	ps.errlen = errlen;
	if ((r = parse_stream(&ps)) != 0)
		goto out;
	*out = cfg;
	cfg = NULL;
 out:
	if (r == BZ_ERR_ALLOC)
		bz_errf(err, errlen, "%s: out of memory", path);
	if (parser_ok)
		yaml_parser_delete(&ps.parser);
	bz_config_free(cfg);
	explicit_bzero(text, len);
	free(text);
	return r;
}

void
bz_config_free(struct bz_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->n; i++) {
		free(cfg->items[i].key);
		/* Values may be secrets (enrolment tokens). */
		if (cfg->items[i].value != NULL) {
			explicit_bzero(cfg->items[i].value,
			    strlen(cfg->items[i].value));
			free(cfg->items[i].value);
		}
	}
	free(cfg->items);
	free(cfg->path);
	free(cfg->dir);
	free(cfg);
}

const char *
bz_config_get(const struct bz_config *cfg, const char *key)
{
	const struct kv *kv;

	if (cfg == NULL || (kv = find(cfg, key)) == NULL)
		return NULL;
	return kv->value;
}

const char *
bz_config_require(const struct bz_config *cfg, const char *key, char *err,
    size_t errlen)
{
	const char *v = bz_config_get(cfg, key);

	if (v == NULL)
		bz_errf(err, errlen, "%s: missing required setting %s",
		    cfg ? cfg->path : "config", key);
	return v;
}

char *
bz_config_path(const struct bz_config *cfg, const char *key)
{
	const char *v = bz_config_get(cfg, key);
	char *p;

	if (v == NULL)
		return NULL;
	if (v[0] == '/')
		return strdup(v);
	if (asprintf(&p, "%s/%s", cfg->dir, v) < 0)
		return NULL;
	return p;
}
