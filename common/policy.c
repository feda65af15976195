/*
 * policy.c: loading a policy file or directory into a compiled set.
 *
 * Each file is parsed with libyaml's event parser into a small tree that
 * keeps every node's line:column (anchors, aliases and tags are refused,
 * duplicate keys reported), then the tree is checked against the language
 * of policies/README.md and compiled into struct rule. Errors are collected,
 * not fatal, so one run shows every mistake; any error means no set.
 * Evaluation is in policy_eval.c, warnings in policy_lint.c.
 */
#include "policy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "buf.h"
#include "policy_int.h"
#include "tz.h"
#include "util.h"

#define ARENA_CHUNK (64u * 1024)

struct loader {
	struct bz_policy_set *set;
	struct bz_policy_errors *errs;
	int fatal;             /* BZ_ERR_ALLOC etc.: give up */
	int nerrors;           /* errors reported for the whole load */
	const char *file;      /* arena copy of the current file name */
	const char *data;      /* the current file's bytes */
	size_t len;
	int stream;            /* a policy file: compile rules as parsed */
	int in_policies;       /* the value being built is "policies" */
	int version_bad;       /* "version" seen and not 1: skip rules */
	struct arena tmp;      /* parse trees of the current file */
	yaml_parser_t parser;
};

/* ---- arena ---------------------------------------------------------- */

struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[];
};

void *
bz_arena_alloc(struct arena *a, size_t n)
{
	struct chunk *c = a->head;
	void *p;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (n == 0)
		n = sizeof(max_align_t);
	if (c == NULL || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = a->head;
		a->head = c;
	}
	p = (unsigned char *)c->data + c->used;
	c->used += n;
	return p;
}

char *
bz_arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p;

	if (n == SIZE_MAX || (p = bz_arena_alloc(a, n + 1)) == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void
bz_arena_free(struct arena *a)
{
	struct chunk *c, *next;

	for (c = a->head; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	a->head = NULL;
}

/* ---- string maps ----------------------------------------------------- */

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static uint64_t
hash_str(const char *s, size_t n, int fold, int rev)
{
	uint64_t h = BZ_HASH_INIT;
	size_t i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[rev ? n - 1 - i : i];
		h = bz_hash_step(h, fold ? lower(c) : c);
	}
	return h;
}

static int
key_eq(const struct hent *e, const char *s, size_t n, int fold)
{
	size_t i;

	if (e->klen != n)
		return 0;
	if (!fold)
		return memcmp(e->key, s, n) == 0;
	for (i = 0; i < n; i++)
		if (lower((unsigned char)e->key[i]) != lower((unsigned char)s[i]))
			return 0;
	return 1;
}

const struct hent *
bz_hmap_find_hashed(const struct hmap *m, const char *key, size_t klen,
    uint64_t h)
{
	size_t i;

	if (m->cap == 0)
		return NULL;
	for (i = h & (m->cap - 1); m->tab[i].key != NULL;
	    i = (i + 1) & (m->cap - 1))
		if (key_eq(&m->tab[i], key, klen, m->fold))
			return &m->tab[i];
	return NULL;
}

const struct hent *
bz_hmap_find(const struct hmap *m, const char *key, size_t klen)
{
	if (m->cap == 0)
		return NULL;
	return bz_hmap_find_hashed(m, key, klen,
	    hash_str(key, klen, m->fold, m->rev));
}

static int
hmap_grow(struct hmap *m)
{
	struct hent *old = m->tab, *nt;
	size_t oldcap = m->cap, ncap = m->cap ? m->cap * 2 : 64, i, j;

	if ((nt = calloc(ncap, sizeof(*nt))) == NULL)
		return BZ_ERR_ALLOC;
	for (i = 0; i < oldcap; i++) {
		if (old[i].key == NULL)
			continue;
		for (j = hash_str(old[i].key, old[i].klen, m->fold, m->rev) &
		    (ncap - 1); nt[j].key != NULL; j = (j + 1) & (ncap - 1))
			;
		nt[j] = old[i];
	}
	free(old);
	m->tab = nt;
	m->cap = ncap;
	return BZ_OK;
}

/* File rule id under key (key must outlive the map). */
static int
hmap_add(struct hmap *m, const char *key, size_t klen, size_t id)
{
	struct hent *e;
	size_t i, *ids;

	if ((m->count + 1) * 2 > m->cap && hmap_grow(m) != 0)
		return BZ_ERR_ALLOC;
	for (i = hash_str(key, klen, m->fold, m->rev) & (m->cap - 1);
	    m->tab[i].key != NULL; i = (i + 1) & (m->cap - 1))
		if (key_eq(&m->tab[i], key, klen, m->fold))
			break;
	e = &m->tab[i];
	if (e->key == NULL) {
		e->key = key;
		e->klen = klen;
		m->count++;
	}
	if (e->n > 0 && e->ids[e->n - 1] == id)
		return BZ_OK;
	if (e->n == e->cap) {
		size_t ncap = e->cap ? e->cap * 2 : 2;
		if ((ids = reallocarray(e->ids, ncap, sizeof(*ids))) == NULL)
			return BZ_ERR_ALLOC;
		e->ids = ids;
		e->cap = ncap;
	}
	e->ids[e->n++] = id;
	return BZ_OK;
}

static void
hmap_free(struct hmap *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++)
		free(m->tab[i].ids);
	free(m->tab);
	memset(m, 0, sizeof(*m));
}

/* ---- errors ----------------------------------------------------------- */

void
bz_policy_errors_free(struct bz_policy_errors *e)
{
	if (e == NULL)
		return;
	free(e->items);
	e->items = NULL;
	e->count = 0;
}

void
bz_policy_add_error_va(struct bz_policy_errors *errs, int *nerrors,
    const char *file, int line, int col, const char *fmt, va_list ap)
{
	struct bz_policy_error *it, *n;

	(*nerrors)++;
	if (errs == NULL || errs->count > BZ_POLICY_ERRORS_MAX)
		return;
	/* Capacity: 8, then doubled whenever count reaches a power of two. */
	if (errs->count == 0 || (errs->count >= 8 &&
	    (errs->count & (errs->count - 1)) == 0)) {
		size_t ncap = errs->count ? errs->count * 2 : 8;
		if ((n = reallocarray(errs->items, ncap, sizeof(*n))) == NULL)
			return;
		errs->items = n;
	}
	it = &errs->items[errs->count++];
	memset(it, 0, sizeof(*it));
	snprintf(it->file, sizeof(it->file), "%s", file ? file : "");
	it->line = line;
	it->column = col;
	if (errs->count > BZ_POLICY_ERRORS_MAX) {
		snprintf(it->message, sizeof(it->message),
		    "too many errors; stopping");
		return;
	}
	vsnprintf(it->message, sizeof(it->message), fmt, ap);
}

static void err_at(struct loader *, int, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));

static void
err_at(struct loader *L, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bz_policy_add_error_va(L->errs, &L->nerrors, L->file, line, col, fmt, ap);
	va_end(ap);
}

static void err_node(struct loader *, const struct ynode *, const char *,
    ...) __attribute__((format(printf, 3, 4)));

static void
err_node(struct loader *L, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bz_policy_add_error_va(L->errs, &L->nerrors, L->file, n->line, n->col, fmt, ap);
	va_end(ap);
}

int
bz_policy_error_format(const struct bz_policy_error *e, char *buf,
    size_t len)
{
	if (e->line > 0)
		return snprintf(buf, len, "%s:%d:%d: %s", e->file, e->line,
		    e->column, e->message);
	return snprintf(buf, len, "%s: %s", e->file, e->message);
}

/* ---- YAML to tree -------------------------------------------------- */

static struct ynode *
node_new(struct loader *L, enum ytype t, yaml_mark_t m)
{
	struct ynode *n = bz_arena_alloc(&L->tmp, sizeof(*n));

	if (n == NULL) {
		L->fatal = BZ_ERR_ALLOC;
		return NULL;
	}
	memset(n, 0, sizeof(*n));
	n->type = t;
	n->line = m.line >= INT_MAX ? INT_MAX : (int)m.line + 1;
	n->col = m.column >= INT_MAX ? INT_MAX : (int)m.column + 1;
	return n;
}

static void
append(struct ynode *parent, struct ynode *child)
{
	if (parent->last != NULL)
		parent->last->next = child;
	else
		parent->first = child;
	parent->last = child;
	parent->n++;
}

/* Next event, or a syntax error with its position (returns -1). */
static int
next_event(struct loader *L, yaml_event_t *ev)
{
	yaml_mark_t m;
	const char *problem;

	if (yaml_parser_parse(&L->parser, ev))
		return 0;
	if (L->parser.error == YAML_MEMORY_ERROR) {
		L->fatal = BZ_ERR_ALLOC;
		return -1;
	}
	m = L->parser.problem_mark;
	if (L->parser.error == YAML_READER_ERROR) {
		/* Reader errors (bad UTF-8, control characters) only give a
		 * byte offset: count lines and characters up to it. */
		size_t i, off = L->parser.problem_offset;
		m.line = m.column = 0;
		for (i = 0; i < off && i < L->len; i++) {
			if (L->data[i] == '\n') {
				m.line++;
				m.column = 0;
			} else if (((unsigned char)L->data[i] & 0xc0) != 0x80) {
				m.column++;
			}
		}
	}
	problem = L->parser.problem ? L->parser.problem : "syntax error";
	if (L->parser.context != NULL)
		err_at(L, (int)m.line + 1, (int)m.column + 1,
		    "YAML syntax error: %s %s", problem, L->parser.context);
	else
		err_at(L, (int)m.line + 1, (int)m.column + 1,
		    "YAML syntax error: %s", problem);
	return -1;
}

static void
check_props(struct loader *L, const yaml_event_t *ev, const yaml_char_t *anchor,
    const yaml_char_t *tag)
{
	if (anchor != NULL)
		err_at(L, (int)ev->start_mark.line + 1,
		    (int)ev->start_mark.column + 1,
		    "anchors (&%s) are not allowed", (const char *)anchor);
	if (tag != NULL)
		err_at(L, (int)ev->start_mark.line + 1,
		    (int)ev->start_mark.column + 1,
		    "tags (%s) are not allowed", (const char *)tag);
}

static int build(struct loader *L, yaml_event_t *ev, int depth,
    struct ynode **out);
static void parse_rule(struct loader *L, const struct ynode *n);

/* Where the arena stands, to give back what was allocated after. */
struct arena_mark {
	struct chunk *head;
	size_t used;
};

static struct arena_mark
arena_mark(const struct arena *a)
{
	struct arena_mark m = {a->head, a->head ? a->head->used : 0};

	return m;
}

static void
arena_release(struct arena *a, struct arena_mark m)
{
	struct chunk *c;

	while (a->head != m.head) {
		c = a->head;
		a->head = c->next;
		free(c);
	}
	if (a->head != NULL)
		a->head->used = m.used;
}

/*
 * The items of a policy file's "policies" list: each is built, compiled
 * into the set and its tree freed, so memory follows the largest rule, not
 * the file. seq keeps only the count.
 */
static int
stream_rules(struct loader *L, struct ynode *seq, int depth)
{
	struct arena_mark m;
	struct ynode *item;
	yaml_event_t ev;

	for (;;) {
		if (next_event(L, &ev) != 0)
			return -1;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		m = arena_mark(&L->tmp);
		if (build(L, &ev, depth + 1, &item) != 0)
			return -1;
		seq->n++;
		if (!L->version_bad && L->fatal == 0)
			parse_rule(L, item);
		arena_release(&L->tmp, m);
	}
}

static int
build_children(struct loader *L, struct ynode *n, int depth)
{
	yaml_event_t ev;
	struct ynode *key, *val, *k;
	enum yaml_event_type_e end = n->type == N_SEQ ?
	    YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;

	for (;;) {
		if (next_event(L, &ev) != 0)
			return -1;
		if (ev.type == end) {
			yaml_event_delete(&ev);
			return 0;
		}
		if (build(L, &ev, depth + 1, &key) != 0)
			return -1;
		if (n->type == N_SEQ) {
			append(n, key);
			continue;
		}
		k = NULL;
		if (key->type == N_SCALAR)
			for (k = n->first; k != NULL; k = k->next)
				if (strcmp(k->str, key->str) == 0)
					break;
		/* A policy file's rules are compiled one by one as they are
		 * parsed (see stream_rules). */
		L->in_policies = L->stream && depth == 0 && k == NULL &&
		    key->type == N_SCALAR && strcmp(key->str, "policies") == 0;
		if (next_event(L, &ev) != 0 ||
		    build(L, &ev, depth + 1, &val) != 0)
			return -1;
		L->in_policies = 0;
		if (key->type != N_SCALAR) {
			if (key->type != N_BAD)
				err_node(L, key, "mapping keys must be "
				    "strings");
			continue;
		}
		key->value = val;
		if (L->stream && depth == 0 && k == NULL &&
		    strcmp(key->str, "version") == 0)
			L->version_bad = val->type != N_SCALAR ||
			    strcmp(val->str, "1") != 0;
		if (k != NULL) {
			err_node(L, key, "duplicate key \"%s\" (first at "
			    "line %d)", key->str, k->line);
			continue;
		}
		if (n->n >= BZ_POLICY_MAP_MAX) {
			err_node(L, key, "too many keys in one mapping "
			    "(at most %d)", BZ_POLICY_MAP_MAX);
			return -1;
		}
		append(n, key);
	}
}

/* Build the node that starts with *ev (consumed). 0, or -1 to give up on
 * the file (the error is reported). */
static int
build(struct loader *L, yaml_event_t *ev, int depth, struct ynode **out)
{
	struct ynode *n = NULL;
	enum ytype t;
	int r = 0;

	*out = NULL;
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		err_at(L, (int)ev->start_mark.line + 1,
		    (int)ev->start_mark.column + 1,
		    "aliases (*%s) are not allowed",
		    (const char *)ev->data.alias.anchor);
		if ((n = node_new(L, N_BAD, ev->start_mark)) == NULL)
			r = -1;
		break;
	case YAML_SCALAR_EVENT:
		check_props(L, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
		if ((n = node_new(L, N_SCALAR, ev->start_mark)) == NULL ||
		    (n->str = bz_arena_strndup(&L->tmp,
		    (const char *)ev->data.scalar.value,
		    ev->data.scalar.length)) == NULL) {
			L->fatal = BZ_ERR_ALLOC;
			r = -1;
			break;
		}
		n->len = ev->data.scalar.length;
		if (strlen(n->str) != n->len) {
			err_node(L, n, "strings may not contain NUL");
			n->type = N_BAD;
		}
		break;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (ev->type == YAML_SEQUENCE_START_EVENT) {
			t = N_SEQ;
			check_props(L, ev, ev->data.sequence_start.anchor,
			    ev->data.sequence_start.tag);
		} else {
			t = N_MAP;
			check_props(L, ev, ev->data.mapping_start.anchor,
			    ev->data.mapping_start.tag);
		}
		if (depth >= BZ_POLICY_DEPTH_MAX) {
			err_at(L, (int)ev->start_mark.line + 1,
			    (int)ev->start_mark.column + 1,
			    "nested too deep (at most %d levels)",
			    BZ_POLICY_DEPTH_MAX);
			r = -1;
			break;
		}
		if ((n = node_new(L, t, ev->start_mark)) == NULL) {
			r = -1;
			break;
		}
		yaml_event_delete(ev);
		if (t == N_SEQ && L->in_policies && depth == 1) {
			L->in_policies = 0;
			if (stream_rules(L, n, depth) != 0)
				return -1;
		} else if (build_children(L, n, depth) != 0) {
			return -1;
		}
		*out = n;
		return 0;
	default:
		err_at(L, (int)ev->start_mark.line + 1,
		    (int)ev->start_mark.column + 1, "unexpected YAML event");
		r = -1;
		break;
	}
	yaml_event_delete(ev);
	*out = n;
	return r;
}

/* The document's root node, NULL when the file has none or gave up. */
static struct ynode *
parse_tree(struct loader *L, const char *data, size_t len,
    const char *empty_msg)
{
	yaml_event_t ev;
	struct ynode *root = NULL;
	int docs = 0, failed = 0;

	if (!yaml_parser_initialize(&L->parser)) {
		L->fatal = BZ_ERR_ALLOC;
		return NULL;
	}
	yaml_parser_set_input_string(&L->parser, (const unsigned char *)data,
	    len);
	L->data = data;
	L->len = len;
	for (;;) {
		if (next_event(L, &ev) != 0) {
			root = NULL;
			failed = 1;
			break;
		}
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_DOCUMENT_START_EVENT) {
			if (++docs == 2) {
				err_at(L, (int)ev.start_mark.line + 1,
				    (int)ev.start_mark.column + 1,
				    "only one YAML document per file");
				yaml_event_delete(&ev);
				root = NULL;
				break;
			}
			yaml_event_delete(&ev);
			continue;
		}
		if (ev.type == YAML_STREAM_START_EVENT ||
		    ev.type == YAML_DOCUMENT_END_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		if (build(L, &ev, 0, &root) != 0) {
			root = NULL;
			break;
		}
	}
	yaml_parser_delete(&L->parser);
	if (docs == 0 && !failed && L->fatal == 0)
		err_at(L, 1, 1, "%s", empty_msg);
	return root;
}

struct ynode *
bz_yaml_parse(const char *file, const char *data, size_t len,
    const char *empty_msg, struct arena *arena,
    struct bz_policy_errors *errs, int *nerrors, int *fatal)
{
	struct loader L;
	struct ynode *root;

	memset(&L, 0, sizeof(L));
	L.errs = errs;
	L.file = file;
	L.tmp = *arena;
	root = parse_tree(&L, data, len, empty_msg);
	*arena = L.tmp;
	*nerrors += L.nerrors;
	if (L.fatal != 0)
		*fatal = L.fatal;
	return L.fatal != 0 ? NULL : root;
}

/* ---- patterns ---------------------------------------------------------- */

/* Check glob syntax: 0, or -1 with a reason. */
static int
glob_scan(const char *s, struct pat *p, const char **why)
{
	size_t i, j;
	int first = -1;

	p->glob = 0;
	for (i = 0; s[i] != '\0'; i++) {
		switch (s[i]) {
		case '\\':
			if (s[i + 1] == '\0') {
				*why = "trailing backslash";
				return -1;
			}
			if (first < 0)
				first = (int)i;
			i++;
			break;
		case '*':
		case '?':
			if (first < 0)
				first = (int)i;
			break;
		case '[':
			if (first < 0)
				first = (int)i;
			j = i + 1;
			if (s[j] == '!' || s[j] == '^')
				j++;
			if (s[j] == ']')
				j++;
			while (s[j] != '\0' && s[j] != ']') {
				if (s[j] == '[' && (s[j + 1] == ':' ||
				    s[j + 1] == '.' || s[j + 1] == '=')) {
					char d = s[j + 1];
					const char *e;
					j += 2;
					for (e = s + j; *e != '\0' && !(e[0] ==
					    d && e[1] == ']'); e++)
						;
					if (*e == '\0') {
						*why = "unterminated character "
						    "class";
						return -1;
					}
					j = (size_t)(e - s) + 2;
					continue;
				}
				j++;
			}
			if (s[j] != ']') {
				*why = "unmatched \"[\"";
				return -1;
			}
			i = j;
			break;
		default:
			break;
		}
	}
	p->glob = first >= 0;
	p->prefix = first >= 0 ? (size_t)first : i;
	/* Trailing bytes that are no part of any wildcard or escape. */
	for (j = i; j > 0 && strchr("*?[]\\", s[j - 1]) == NULL; j--)
		;
	p->suffix = i - j;
	p->star = p->glob && p->prefix + p->suffix + 1 == i &&
	    s[p->prefix] == '*';
	return 0;
}

static int
casefold_prefix(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

int
bz_pat_match(const struct pat *p, const char *s, size_t slen, int fold)
{
	if (!p->glob) {
		if (slen != p->len)
			return 0;
		return fold ? casefold_prefix(p->s, s, slen) :
		    memcmp(p->s, s, slen) == 0;
	}
	if (slen < p->prefix || !(fold ? casefold_prefix(p->s, s, p->prefix) :
	    memcmp(p->s, s, p->prefix) == 0))
		return 0;
	if (p->star) {
		const char *ps = p->s + p->len - p->suffix;
		const char *ss = s + slen - p->suffix;
		if (slen < p->prefix + p->suffix)
			return 0;
		return fold ? casefold_prefix(ps, ss, p->suffix) :
		    memcmp(ps, ss, p->suffix) == 0;
	}
	return fnmatch(p->s, s, fold ? FNM_CASEFOLD : 0) == 0;
}

/* ---- semantic checks -------------------------------------------------- */

static const char *
type_name(const struct ynode *n)
{
	switch (n->type) {
	case N_SCALAR: return "a string";
	case N_SEQ: return "a list";
	case N_MAP: return "a mapping";
	default: return "invalid";
	}
}

/* A non-empty string value; NULL (error reported) otherwise. */
static const char *
want_string(struct loader *L, const struct ynode *n, const char *what)
{
	if (n->type == N_BAD)
		return NULL;
	if (n->type != N_SCALAR) {
		err_node(L, n, "\"%s\" must be a string, not %s", what,
		    type_name(n));
		return NULL;
	}
	if (n->len == 0) {
		err_node(L, n, "\"%s\" must not be empty", what);
		return NULL;
	}
	return n->str;
}

/* n must be a non-empty node of type want (a list or a mapping). */
static int
want_nonempty(struct loader *L, const struct ynode *n, enum ytype want,
    const char *what)
{
	if (n->type == N_BAD)
		return -1;
	if (n->type != want) {
		err_node(L, n, "\"%s\" must be a %s, not %s", what,
		    want == N_SEQ ? "list" : "mapping", type_name(n));
		return -1;
	}
	if (n->n == 0) {
		err_node(L, n, "\"%s\" must not be empty", what);
		return -1;
	}
	return 0;
}

static int
want_list(struct loader *L, const struct ynode *n, const char *what)
{
	return want_nonempty(L, n, N_SEQ, what);
}

static int
want_map(struct loader *L, const struct ynode *n, const char *what)
{
	return want_nonempty(L, n, N_MAP, what);
}

static char *
set_strdup(struct loader *L, const char *s)
{
	char *p = bz_arena_strndup(&L->set->arena, s, strlen(s));

	if (p == NULL)
		L->fatal = BZ_ERR_ALLOC;
	return p;
}

/* Compile one pattern string; 0 or -1 (reported). */
static int
compile_pat(struct loader *L, const struct ynode *n, const char *s,
    const char *what, struct pat *p)
{
	const char *why = NULL;

	memset(p, 0, sizeof(*p));
	if (glob_scan(s, p, &why) != 0) {
		err_node(L, n, "invalid pattern \"%s\" in \"%s\": %s", s, what,
		    why);
		return -1;
	}
	if ((p->s = set_strdup(L, s)) == NULL)
		return -1;
	p->len = strlen(s);
	p->line = n->line;
	p->col = n->col;
	return 0;
}

/* A non-empty list of patterns. */
static int
compile_list(struct loader *L, const struct ynode *n, const char *what,
    struct patlist *out)
{
	const struct ynode *it;
	const char *s;
	int bad = 0;

	memset(out, 0, sizeof(*out));
	if (want_list(L, n, what) != 0)
		return -1;
	if ((out->v = bz_arena_alloc(&L->set->arena, n->n * sizeof(*out->v))) ==
	    NULL) {
		L->fatal = BZ_ERR_ALLOC;
		return -1;
	}
	for (it = n->first; it != NULL; it = it->next) {
		if ((s = want_string(L, it, what)) == NULL ||
		    compile_pat(L, it, s, what, &out->v[out->n]) != 0) {
			bad = 1;
			continue;
		}
		out->n++;
	}
	return bad ? -1 : 0;
}

static const char *const rule_keys =
    "name, description, subjects, targets, unix_users, allow, deny, "
    "port_forward, mfa_max_age, hours, days, timezone";

static void
parse_subjects(struct loader *L, const struct ynode *n, struct rule *r)
{
	const struct ynode *k;

	if (want_map(L, n, "subjects") != 0)
		return;
	for (k = n->first; k != NULL; k = k->next) {
		if (strcmp(k->str, "users") == 0)
			(void)compile_list(L, k->value, "users", &r->users);
		else if (strcmp(k->str, "groups") == 0)
			(void)compile_list(L, k->value, "groups", &r->groups);
		else
			err_node(L, k, "unknown key \"%s\" in \"subjects\" "
			    "(expected users or groups)", k->str);
	}
}

static void
parse_labels(struct loader *L, const struct ynode *n, struct rule *r)
{
	const struct ynode *k;
	const char *v;

	if (want_map(L, n, "labels") != 0)
		return;
	if ((r->labels = bz_arena_alloc(&L->set->arena,
	    n->n * sizeof(*r->labels))) == NULL) {
		L->fatal = BZ_ERR_ALLOC;
		return;
	}
	for (k = n->first; k != NULL; k = k->next) {
		struct label_pat *lp = &r->labels[r->nlabels];
		if (k->len == 0) {
			err_node(L, k, "label names must not be empty");
			continue;
		}
		if ((v = want_string(L, k->value, "labels")) == NULL ||
		    compile_pat(L, k->value, v, "labels", &lp->value) != 0)
			continue;
		if ((lp->key = set_strdup(L, k->str)) == NULL)
			return;
		r->nlabels++;
	}
}

static void
parse_targets(struct loader *L, const struct ynode *n, struct rule *r)
{
	const struct ynode *k;

	if (want_map(L, n, "targets") != 0)
		return;
	for (k = n->first; k != NULL; k = k->next) {
		if (strcmp(k->str, "names") == 0)
			(void)compile_list(L, k->value, "names", &r->names);
		else if (strcmp(k->str, "labels") == 0)
			parse_labels(L, k->value, r);
		else
			err_node(L, k, "unknown key \"%s\" in \"targets\" "
			    "(expected names or labels)", k->str);
	}
}

static const char *const action_names[] = {
	[BZ_ACTION_CONNECT] = "connect",
	[BZ_ACTION_SHELL] = "shell",
	[BZ_ACTION_EXEC] = "exec",
	[BZ_ACTION_SCP] = "scp",
	[BZ_ACTION_SFTP] = "sftp",
	[BZ_ACTION_PORT_FORWARD] = "port_forward",
};

const char *
bz_action_name(enum bz_action a)
{
	if ((unsigned)a < sizeof(action_names) / sizeof(action_names[0]))
		return action_names[a];
	return "unknown";
}

int
bz_action_parse(const char *s, enum bz_action *a)
{
	size_t i;

	for (i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++)
		if (strcmp(s, action_names[i]) == 0) {
			*a = (enum bz_action)i;
			return 0;
		}
	return BZ_ERR_INVALID;
}

static void
parse_actions(struct loader *L, const struct ynode *n, const char *what,
    struct rule *r)
{
	const struct ynode *it, *k;
	enum bz_action a;

	if (want_list(L, n, what) != 0)
		return;
	for (it = n->first; it != NULL; it = it->next) {
		if (it->type == N_MAP) {
			/* {exec: [command patterns]} */
			k = it->first;
			if (it->n != 1 || strcmp(k->str, "exec") != 0) {
				err_node(L, it, "only \"exec\" can take a list "
				    "of commands, as {exec: [...]}");
				continue;
			}
			if (r->actions & ACT_BIT(BZ_ACTION_EXEC)) {
				err_node(L, k, "\"exec\" given twice");
				continue;
			}
			r->actions |= ACT_BIT(BZ_ACTION_EXEC);
			(void)compile_list(L, k->value, "exec", &r->commands);
			continue;
		}
		if (want_string(L, it, what) == NULL)
			continue;
		if (bz_action_parse(it->str, &a) != 0 ||
		    a == BZ_ACTION_CONNECT) {
			err_node(L, it, "unknown action \"%s\" (expected "
			    "shell, exec, sftp, scp or port_forward)",
			    it->str);
			continue;
		}
		if (r->actions & ACT_BIT(a)) {
			err_node(L, it, "action \"%s\" given twice", it->str);
			continue;
		}
		r->actions |= ACT_BIT(a);
	}
}

/* "host:port", host a glob (or [IPv6] literal), port "*" or 1-65535. */
static int
parse_forward(struct loader *L, const struct ynode *n, const char *s,
    struct fwd_pat *f)
{
	const char *colon = strrchr(s, ':'), *why = NULL;
	char host[256];
	size_t hlen;
	int port;

	memset(f, 0, sizeof(*f));
	if (colon == NULL || colon == s || colon[1] == '\0') {
		err_node(L, n, "invalid port_forward \"%s\" (expected "
		    "host:port)", s);
		return -1;
	}
	hlen = (size_t)(colon - s);
	if (hlen >= sizeof(host)) {
		err_node(L, n, "host too long in port_forward \"%s\"", s);
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (host[0] == '[' && host[hlen - 1] == ']' && hlen > 2) {
		/* An IPv6 literal: not a bracket expression. */
		memmove(host, host + 1, hlen - 2);
		host[hlen - 2] = '\0';
		f->host.glob = 0;
		f->host.len = f->host.prefix = hlen - 2;
		if (strpbrk(host, "*?[]\\") != NULL) {
			err_node(L, n, "invalid IPv6 address in port_forward "
			    "\"%s\"", s);
			return -1;
		}
		if ((f->host.s = set_strdup(L, host)) == NULL)
			return -1;
	} else if (glob_scan(host, &f->host, &why) != 0) {
		err_node(L, n, "invalid pattern \"%s\" in \"port_forward\": %s",
		    s, why);
		return -1;
	} else {
		f->host.len = hlen;
		if ((f->host.s = set_strdup(L, host)) == NULL)
			return -1;
	}
	if (strcmp(colon + 1, "*") == 0) {
		f->port.glob = 1;
		f->port.prefix = 0;
	} else if (colon[1] < '0' || colon[1] > '9' ||
	    bz_parse_int_range(colon + 1, 1, 65535, &port) != 0) {
		err_node(L, n, "invalid port in port_forward \"%s\" "
		    "(expected 1-65535 or *)", s);
		return -1;
	}
	if ((f->port.s = set_strdup(L, colon + 1)) == NULL ||
	    (f->text = set_strdup(L, s)) == NULL)
		return -1;
	f->port.len = strlen(colon + 1);
	if (!f->port.glob)
		f->port.prefix = f->port.len;
	return 0;
}

static void
parse_forwards(struct loader *L, const struct ynode *n, struct rule *r)
{
	const struct ynode *it;
	const char *s;

	if (want_list(L, n, "port_forward") != 0)
		return;
	if ((r->forwards = bz_arena_alloc(&L->set->arena,
	    n->n * sizeof(*r->forwards))) == NULL) {
		L->fatal = BZ_ERR_ALLOC;
		return;
	}
	for (it = n->first; it != NULL; it = it->next) {
		if ((s = want_string(L, it, "port_forward")) == NULL ||
		    parse_forward(L, it, s, &r->forwards[r->nforwards]) != 0)
			continue;
		r->nforwards++;
	}
}

/* "HH:MM" into minutes; end may be 24:00. */
static int
parse_hhmm(const char *s, int allow24)
{
	int h, m;

	if (!(s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' &&
	    s[2] == ':' && s[3] >= '0' && s[3] <= '5' && s[4] >= '0' &&
	    s[4] <= '9'))
		return -1;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 24 || (h == 24 && (m != 0 || !allow24)))
		return -1;
	return h * 60 + m;
}

static void
parse_hours(struct loader *L, const struct ynode *n, struct rule *r)
{
	const char *s = want_string(L, n, "hours");

	if (s == NULL)
		return;
	if (strlen(s) != 11 || s[5] != '-' ||
	    (r->start_min = parse_hhmm(s, 0)) < 0 ||
	    (r->end_min = parse_hhmm(s + 6, 1)) < 0) {
		err_node(L, n, "invalid hours \"%s\" (expected HH:MM-HH:MM, "
		    "e.g. 09:00-18:00)", s);
		return;
	}
	if (r->start_min == r->end_min % 1440) {
		err_node(L, n, "invalid hours \"%s\": the window is empty", s);
		return;
	}
	r->has_hours = 1;
	r->hours = set_strdup(L, s);
}

static int
day_index(const char *s, size_t len)
{
	static const char days[] = "sunmontuewedthufrisat";
	int i;

	if (len != 3)
		return -1;
	for (i = 0; i < 7; i++)
		if (strncmp(days + i * 3, s, 3) == 0)
			return i;
	return -1;
}

static void
parse_days(struct loader *L, const struct ynode *n, struct rule *r)
{
	const struct ynode *it;
	const char *s, *dash;
	int a, b;

	if (want_list(L, n, "days") != 0)
		return;
	for (it = n->first; it != NULL; it = it->next) {
		if ((s = want_string(L, it, "days")) == NULL)
			continue;
		dash = strchr(s, '-');
		a = day_index(s, dash ? (size_t)(dash - s) : strlen(s));
		b = dash ? day_index(dash + 1, strlen(dash + 1)) : a;
		if (a < 0 || b < 0) {
			err_node(L, it, "unknown day \"%s\" (expected mon, tue, "
			    "wed, thu, fri, sat, sun or a range like mon-fri)",
			    s);
			continue;
		}
		for (;;) {
			r->days |= 1u << a;
			if (a == b)
				break;
			a = (a + 1) % 7;
		}
	}
}

static void
parse_timezone(struct loader *L, const struct ynode *n, struct rule *r)
{
	struct bz_policy_set *set = L->set;
	const char *s = want_string(L, n, "timezone");
	struct tzent *t;
	struct bz_tz *tz;
	char why[200];
	size_t i;
	int rc;

	if (s == NULL)
		return;
	for (i = 0; i < set->ntzs; i++)
		if (strcmp(set->tzs[i].name, s) == 0) {
			r->tz = set->tzs[i].tz;
			r->tzname = set->tzs[i].name;
			return;
		}
	why[0] = '\0';
	if ((rc = bz_tz_load(s, &tz, why, sizeof(why))) != 0) {
		if (rc == BZ_ERR_ALLOC)
			L->fatal = rc;
		else
			err_node(L, n, "unknown timezone \"%s\" (%s)", s, why);
		return;
	}
	if ((t = reallocarray(set->tzs, set->ntzs + 1, sizeof(*t))) == NULL) {
		bz_tz_free(tz);
		L->fatal = BZ_ERR_ALLOC;
		return;
	}
	set->tzs = t;
	if ((t[set->ntzs].name = set_strdup(L, s)) == NULL) {
		bz_tz_free(tz);
		return;
	}
	t[set->ntzs].tz = tz;
	r->tz = tz;
	r->tzname = t[set->ntzs].name;
	set->ntzs++;
}

static int
valid_name(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '"')
			return 0;
	return 1;
}

/* One rule mapping. */
static void
parse_rule(struct loader *L, const struct ynode *n)
{
	struct bz_policy_set *set = L->set;
	const struct ynode *k, *allow = NULL, *deny = NULL, *fwd = NULL,
	    *mfa = NULL, *name = NULL, *subjects = NULL, *targets = NULL,
	    *unix_users = NULL;
	const struct hent *dup;
	struct rule *r, *nr;
	const char *s;
	char label[160];
	int before = L->nerrors;

	if (n->type == N_BAD)
		return;
	if (n->type != N_MAP) {
		err_node(L, n, "each policy must be a mapping, not %s",
		    type_name(n));
		return;
	}
	if (set->nrules == set->caprules) {
		size_t ncap = set->caprules ? set->caprules * 2 : 16;
		if (set->nrules >= BZ_POLICY_RULES_MAX) {
			err_node(L, n, "too many policies (at most %d)",
			    BZ_POLICY_RULES_MAX);
			return;
		}
		if ((nr = reallocarray(set->rules, ncap, sizeof(*nr))) ==
		    NULL) {
			L->fatal = BZ_ERR_ALLOC;
			return;
		}
		set->rules = nr;
		set->caprules = ncap;
	}
	r = &set->rules[set->nrules];
	memset(r, 0, sizeof(*r));
	r->file = L->file;
	r->line = n->line;
	r->column = n->col;
	r->tzname = "UTC";
	for (k = n->first; k != NULL && L->fatal == 0; k = k->next) {
		const struct ynode *v = k->value;
		if (strcmp(k->str, "name") == 0) {
			name = k;
			if ((s = want_string(L, v, "name")) == NULL)
				continue;
			if (strlen(s) >= sizeof(((struct bz_policy_decision *)
			    0)->rule) || !valid_name(s)) {
				err_node(L, v, "invalid name \"%.40s\" (at most "
				    "127 characters, no quotes or control "
				    "characters)", s);
				continue;
			}
			r->name = set_strdup(L, s);
		} else if (strcmp(k->str, "description") == 0) {
			if (v->type != N_SCALAR) {
				if (v->type != N_BAD)
					err_node(L, v, "\"description\" must "
					    "be a string, not %s",
					    type_name(v));
				continue;
			}
			r->description = set_strdup(L, v->str);
		} else if (strcmp(k->str, "subjects") == 0) {
			subjects = k;
			parse_subjects(L, v, r);
		} else if (strcmp(k->str, "targets") == 0) {
			targets = k;
			parse_targets(L, v, r);
		} else if (strcmp(k->str, "unix_users") == 0) {
			unix_users = k;
			(void)compile_list(L, v, "unix_users", &r->unix_users);
		} else if (strcmp(k->str, "allow") == 0) {
			allow = k;
			parse_actions(L, v, "allow", r);
		} else if (strcmp(k->str, "deny") == 0) {
			deny = k;
			parse_actions(L, v, "deny", r);
		} else if (strcmp(k->str, "port_forward") == 0) {
			fwd = k;
			parse_forwards(L, v, r);
		} else if (strcmp(k->str, "mfa_max_age") == 0) {
			mfa = k;
			if ((s = want_string(L, v, "mfa_max_age")) == NULL)
				continue;
			if ((r->mfa_max_age = bz_parse_duration(s)) <= 0) {
				err_node(L, v, "invalid duration \"%s\" "
				    "(expected a positive number followed by "
				    "s, m, h or d, e.g. 12h)", s);
				r->mfa_max_age = 0;
			}
		} else if (strcmp(k->str, "hours") == 0) {
			parse_hours(L, v, r);
		} else if (strcmp(k->str, "days") == 0) {
			parse_days(L, v, r);
		} else if (strcmp(k->str, "timezone") == 0) {
			parse_timezone(L, v, r);
		} else {
			err_node(L, k, "unknown key \"%s\" (expected one of: "
			    "%s)", k->str, rule_keys);
		}
	}
	if (L->fatal != 0)
		return;
	if (r->name != NULL)
		snprintf(label, sizeof(label), "policy \"%s\"", r->name);
	else
		snprintf(label, sizeof(label), "policy");
	if (name == NULL)
		err_node(L, n, "policy is missing \"name\"");
	if (subjects == NULL)
		err_node(L, n, "%s is missing \"subjects\"", label);
	else if (subjects->value->type == N_MAP && subjects->value->n > 0 &&
	    r->users.n == 0 && r->groups.n == 0 && L->nerrors == before)
		err_node(L, subjects->value, "\"subjects\" needs \"users\" or "
		    "\"groups\"");
	if (targets == NULL)
		err_node(L, n, "%s is missing \"targets\"", label);
	else if (targets->value->type == N_MAP && targets->value->n > 0 &&
	    r->names.n == 0 && r->nlabels == 0 && L->nerrors == before)
		err_node(L, targets->value, "\"targets\" needs \"names\" or "
		    "\"labels\"");
	if (unix_users == NULL)
		err_node(L, n, "%s is missing \"unix_users\"",
		    label);
	if (allow != NULL && deny != NULL)
		err_node(L, allow->line > deny->line ||
		    (allow->line == deny->line && allow->col > deny->col) ?
		    allow : deny, "%s has both \"allow\" and "
		    "\"deny\" (write two policies)", label);
	else if (allow == NULL && deny == NULL)
		err_node(L, n, "%s needs \"allow\" or \"deny\"",
		    label);
	r->deny = deny != NULL && allow == NULL;
	if (r->actions & ACT_BIT(BZ_ACTION_PORT_FORWARD)) {
		if (fwd == NULL && allow != NULL && deny == NULL)
			err_node(L, allow, "%s allows port_forward "
			    "but has no \"port_forward\" list of host:port "
			    "patterns", label);
	} else if (fwd != NULL && (allow != NULL || deny != NULL)) {
		err_node(L, fwd, "\"port_forward\" is given but %s "
		    "does not %s port_forward", label, r->deny ? "deny" :
		    "allow");
	}
	if (mfa != NULL && r->deny)
		err_node(L, mfa, "\"mfa_max_age\" only applies to allow "
		    "policies");
	if (r->name != NULL) {
		if ((dup = bz_hmap_find(&set->names, r->name,
		    strlen(r->name))) != NULL) {
			const struct rule *o = &set->rules[dup->ids[0]];
			err_node(L, name->value, "duplicate policy name \"%s\" "
			    "(first at %s:%d:%d)", r->name, o->file, o->line,
			    o->column);
		} else if (hmap_add(&set->names, r->name, strlen(r->name),
		    set->nrules) != 0) {
			L->fatal = BZ_ERR_ALLOC;
			return;
		}
	}
	set->nrules++;
}

static void
parse_root(struct loader *L, const struct ynode *root)
{
	const struct ynode *k, *version = NULL, *policies = NULL;

	if (root->type == N_BAD)
		return;
	if (root->type != N_MAP) {
		err_node(L, root, "a policy file must be a mapping with "
		    "\"version: 1\" and \"policies:\", not %s",
		    type_name(root));
		return;
	}
	for (k = root->first; k != NULL; k = k->next) {
		if (strcmp(k->str, "version") == 0)
			version = k;
		else if (strcmp(k->str, "policies") == 0)
			policies = k;
		else
			err_node(L, k, "unknown key \"%s\" (expected version "
			    "or policies)", k->str);
	}
	if (version == NULL) {
		err_node(L, root, "missing \"version\" (add \"version: 1\")");
	} else if (version->value->type != N_BAD &&
	    (version->value->type != N_SCALAR ||
	    strcmp(version->value->str, "1") != 0)) {
		err_node(L, version->value, "unsupported version \"%s\" "
		    "(expected 1)", version->value->type == N_SCALAR ?
		    version->value->str : type_name(version->value));
		return;
	}
	if (policies == NULL) {
		err_node(L, root, "missing \"policies\"");
		return;
	}
	/* The rules themselves were compiled while parsing (stream_rules). */
	(void)want_list(L, policies->value, "policies");
}

/* Parse one file's bytes into L->set. */
static void
load_text(struct loader *L, const char *name, const char *data, size_t len)
{
	struct ynode *root;

	if ((L->file = set_strdup(L, name)) == NULL)
		return;
	L->stream = 1;
	L->version_bad = 0;
	root = parse_tree(L, data, len, "empty policy file (expected "
	    "\"version: 1\" and \"policies:\")");
	if (root != NULL && L->fatal == 0)
		parse_root(L, root);
	bz_arena_free(&L->tmp);
}

/* ---- the set ------------------------------------------------------------ */

static void
pindex_free(struct pindex *x)
{
	hmap_free(&x->exact);
	hmap_free(&x->prefix);
	hmap_free(&x->suffix);
	free(x->plens);
	free(x->slens);
}

void
bz_policy_free(struct bz_policy_set *set)
{
	size_t i;

	if (set == NULL)
		return;
	for (i = 0; i < set->ntzs; i++)
		bz_tz_free(set->tzs[i].tz);
	free(set->tzs);
	free(set->rules);
	hmap_free(&set->names);
	pindex_free(&set->tidx);
	pindex_free(&set->uidx);
	pindex_free(&set->gidx);
	pindex_free(&set->xidx);
	hmap_free(&set->lmap);
	free(set->generic);
	bz_arena_free(&set->arena);
	free(set);
}

size_t
bz_policy_rule_count(const struct bz_policy_set *set)
{
	return set ? set->nrules : 0;
}

/* A label of r whose value is literal, if any. */
static const struct label_pat *
literal_label(const struct rule *r)
{
	size_t i;

	for (i = 0; i < r->nlabels; i++)
		if (!r->labels[i].value.glob)
			return &r->labels[i];
	return NULL;
}

static int
all_literal(const struct patlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].glob)
			return 0;
	return 1;
}

static int
anchored(const struct patlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].glob && l->v[i].prefix == 0 &&
		    l->v[i].suffix == 0)
			return 0;
	return 1;
}

static int
mark_len(unsigned char **lens, size_t *n, size_t len)
{
	unsigned char *p;

	if (len >= *n) {
		if ((p = realloc(*lens, len + 1)) == NULL)
			return BZ_ERR_ALLOC;
		memset(p + *n, 0, len + 1 - *n);
		*lens = p;
		*n = len + 1;
	}
	(*lens)[len] = 1;
	return BZ_OK;
}

/* File rule id under each pattern of l (all anchored). */
static int
file_patterns(struct pindex *x, const struct patlist *l, size_t id)
{
	const struct pat *p;
	size_t i;

	for (i = 0; i < l->n; i++) {
		p = &l->v[i];
		if (!p->glob) {
			if (hmap_add(&x->exact, p->s, p->len, id) != 0)
				return BZ_ERR_ALLOC;
		} else if (p->prefix >= p->suffix) {
			if (hmap_add(&x->prefix, p->s, p->prefix, id) != 0 ||
			    mark_len(&x->plens, &x->nplens, p->prefix) != 0)
				return BZ_ERR_ALLOC;
		} else {
			if (hmap_add(&x->suffix, p->s + p->len - p->suffix,
			    p->suffix, id) != 0 ||
			    mark_len(&x->slens, &x->nslens, p->suffix) != 0)
				return BZ_ERR_ALLOC;
		}
	}
	return BZ_OK;
}

static void
pindex_init(struct pindex *x, int fold)
{
	x->exact.fold = x->prefix.fold = x->suffix.fold = fold;
	x->suffix.rev = 1;
}

/* File every rule in the evaluation index (see policy_int.h). */
static int
build_index(struct bz_policy_set *set)
{
	const struct label_pat *lp;
	size_t i;

	pindex_init(&set->tidx, 0);
	pindex_init(&set->uidx, 1);
	pindex_init(&set->gidx, 0);
	pindex_init(&set->xidx, 0);
	if (set->nrules > 0 && (set->generic = calloc(set->nrules,
	    sizeof(*set->generic))) == NULL)
		return BZ_ERR_ALLOC;
	for (i = 0; i < set->nrules; i++) {
		const struct rule *r = &set->rules[i];
		if (r->names.n > 0 && all_literal(&r->names)) {
			if (file_patterns(&set->tidx, &r->names, i) != 0)
				return BZ_ERR_ALLOC;
		} else if (all_literal(&r->users) && all_literal(&r->groups)) {
			if (file_patterns(&set->uidx, &r->users, i) != 0 ||
			    file_patterns(&set->gidx, &r->groups, i) != 0)
				return BZ_ERR_ALLOC;
		} else if ((lp = literal_label(r)) == NULL &&
		    r->names.n > 0 && anchored(&r->names)) {
			if (file_patterns(&set->tidx, &r->names, i) != 0)
				return BZ_ERR_ALLOC;
		} else if (lp == NULL && anchored(&r->users) &&
		    anchored(&r->groups)) {
			if (file_patterns(&set->uidx, &r->users, i) != 0 ||
			    file_patterns(&set->gidx, &r->groups, i) != 0)
				return BZ_ERR_ALLOC;
		} else if (lp == NULL && anchored(&r->unix_users)) {
			if (file_patterns(&set->xidx, &r->unix_users, i) != 0)
				return BZ_ERR_ALLOC;
		} else if (lp != NULL) {
			/* Key "name\0value": a request needs exactly it. */
			size_t kl = strlen(lp->key), n = kl + 1 + lp->value.len;
			char *k = bz_arena_alloc(&set->arena, n);
			if (k == NULL)
				return BZ_ERR_ALLOC;
			memcpy(k, lp->key, kl + 1);
			memcpy(k + kl + 1, lp->value.s, lp->value.len);
			if (hmap_add(&set->lmap, k, n, i) != 0)
				return BZ_ERR_ALLOC;
		} else {
			set->generic[set->ngeneric++] = i;
		}
	}
	return BZ_OK;
}

/* Read a policy file: a regular file of at most BZ_POLICY_FILE_MAX. */
static int
read_policy_file(struct loader *L, const char *path, char **data,
    size_t *len)
{
	struct stat st;
	char *p = NULL;
	size_t n = 0;
	ssize_t got;
	int fd;

	*data = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err_at(L, 0, 0, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err_at(L, 0, 0, "not a regular file");
		close(fd);
		return -1;
	}
	if (st.st_size > (off_t)BZ_POLICY_FILE_MAX) {
		err_at(L, 0, 0, "file too large (%lld bytes; at most %u)",
		    (long long)st.st_size, BZ_POLICY_FILE_MAX);
		close(fd);
		return -1;
	}
	if ((p = malloc((size_t)st.st_size + 1)) == NULL) {
		L->fatal = BZ_ERR_ALLOC;
		close(fd);
		return -1;
	}
	while (n < (size_t)st.st_size) {
		got = read(fd, p + n, (size_t)st.st_size - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err_at(L, 0, 0, "%s", strerror(errno));
			free(p);
			close(fd);
			return -1;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	p[n] = '\0';
	*data = p;
	*len = n;
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
policy_file_name(const char *s)
{
	size_t n = strlen(s);

	if (s[0] == '.')
		return 0;
	return (n > 5 && strcmp(s + n - 5, ".yaml") == 0) ||
	    (n > 4 && strcmp(s + n - 4, ".yml") == 0);
}

/* Sorted full paths of the policy files in dir. */
static int
list_dir(struct loader *L, const char *dir, char ***out, size_t *nout)
{
	DIR *d;
	struct dirent *de;
	struct stat st;
	char **v = NULL, **nv, *full;
	size_t n = 0, cap = 0, i;
	const char *sep = dir[0] != '\0' && dir[strlen(dir) - 1] == '/' ?
	    "" : "/";

	*out = NULL;
	*nout = 0;
	if ((d = opendir(dir)) == NULL) {
		err_at(L, 0, 0, "%s", strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!policy_file_name(de->d_name))
			continue;
		if (asprintf(&full, "%s%s%s", dir, sep, de->d_name) < 0)
			goto nomem;
		if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(full);
			continue;
		}
		if (n >= BZ_POLICY_FILES_MAX) {
			free(full);
			err_at(L, 0, 0, "more than %d policy files",
			    BZ_POLICY_FILES_MAX);
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				free(full);
				goto nomem;
			}
			v = nv;
		}
		v[n++] = full;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	*nout = n;
	return 0;
nomem:
	closedir(d);
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	L->fatal = BZ_ERR_ALLOC;
	return -1;
}

static int
cmp_pos(const void *a, const void *b, void *arg)
{
	const struct bz_policy_error *items = arg;
	const struct bz_policy_error *x = &items[*(const size_t *)a];
	const struct bz_policy_error *y = &items[*(const size_t *)b];
	size_t i = *(const size_t *)a, j = *(const size_t *)b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->column != y->column)
		return x->column < y->column ? -1 : 1;
	return i < j ? -1 : i > j;
}

void
bz_policy_errors_sort(struct bz_policy_errors *e)
{
	struct bz_policy_error *tmp;
	size_t a = 0, b, i, *idx;

	if (e == NULL || e->count < 2 ||
	    (idx = calloc(e->count, sizeof(*idx))) == NULL)
		return;
	if ((tmp = calloc(e->count, sizeof(*tmp))) == NULL) {
		free(idx);
		return;
	}
	while (a < e->count) {
		for (b = a + 1; b < e->count &&
		    strcmp(e->items[b].file, e->items[a].file) == 0; b++)
			;
		for (i = a; i < b; i++)
			idx[i - a] = i;
		qsort_r(idx, b - a, sizeof(*idx), cmp_pos, e->items);
		for (i = a; i < b; i++)
			tmp[i] = e->items[idx[i - a]];
		a = b;
	}
	memcpy(e->items, tmp, e->count * sizeof(*tmp));
	free(tmp);
	free(idx);
}

static int
finish(struct loader *L, struct bz_policy_set **out)
{
	int r;

	bz_policy_errors_sort(L->errs);

	if (L->fatal == 0 && L->nerrors == 0 &&
	    (r = build_index(L->set)) != 0)
		L->fatal = r;
	if (L->fatal != 0 || L->nerrors != 0) {
		bz_policy_free(L->set);
		if (L->fatal != 0 && L->errs != NULL && L->nerrors == 0)
			err_at(L, 0, 0, "%s", bz_err_str(L->fatal));
		return L->fatal != 0 ? L->fatal : BZ_ERR_FORMAT;
	}
	*out = L->set;
	return BZ_OK;
}

static int
start(struct loader *L, struct bz_policy_set **out,
    struct bz_policy_errors *errs)
{
	memset(L, 0, sizeof(*L));
	*out = NULL;
	if (errs != NULL)
		memset(errs, 0, sizeof(*errs));
	L->errs = errs;
	if ((L->set = calloc(1, sizeof(*L->set))) == NULL)
		return BZ_ERR_ALLOC;
	return BZ_OK;
}

int
bz_policy_load_buffer(const char *name, const char *data, size_t len,
    struct bz_policy_set **out, struct bz_policy_errors *errs)
{
	struct loader L;
	int r;

	if ((r = start(&L, out, errs)) != 0)
		return r;
	L.file = name;
	if (len > BZ_POLICY_FILE_MAX)
		err_at(&L, 0, 0, "file too large (%zu bytes; at most %u)",
		    len, BZ_POLICY_FILE_MAX);
	else
		load_text(&L, name, data, len);
	return finish(&L, out);
}

int
bz_policy_load(const char *path, struct bz_policy_set **out,
    struct bz_policy_errors *errs)
{
	struct loader L;
	struct stat st;
	char **files = NULL, *data;
	size_t nfiles = 0, len, i;
	int r;

	if ((r = start(&L, out, errs)) != 0)
		return r;
	L.file = path;
	if (stat(path, &st) != 0) {
		err_at(&L, 0, 0, "%s", strerror(errno));
	} else if (S_ISDIR(st.st_mode)) {
		if (list_dir(&L, path, &files, &nfiles) == 0 && nfiles == 0)
			err_at(&L, 0, 0, "no policy files in %s (expected "
			    "*.yaml or *.yml)", path);
		for (i = 0; i < nfiles && L.fatal == 0; i++) {
			L.file = files[i];
			if (read_policy_file(&L, files[i], &data, &len) != 0)
				continue;
			load_text(&L, files[i], data, len);
			free(data);
		}
		for (i = 0; i < nfiles; i++)
			free(files[i]);
		free(files);
	} else if (read_policy_file(&L, path, &data, &len) == 0) {
		load_text(&L, path, data, len);
		free(data);
	}
	return finish(&L, out);
}
