/*
 * policy_eval.c: deciding one request against a compiled policy set, and
 * explaining the decision; see policy.h.
 *
 * Candidate rules come from the index built at load time (policy_int.h):
 * the rules filed under the request's target name, under its user and
 * groups, and the generic rest. Each list is in load order, so the scan
 * stops as soon as it can no longer find an earlier match.
 */
#include "policy.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy_int.h"
#include "classify.h"

/* Dimensions of a match, for explain. */
#define D_SUBJECT 1u
#define D_TARGET 2u
#define D_UNIX 4u
#define D_ACTION 8u
#define D_TIME 16u
#define D_ALL 31u

/* A command holding a shell metacharacter (BZ_SHELL_META) only matches a
 * literal exec pattern, so "rsync --server *" cannot be stretched into
 * "rsync --server x; sh". */

struct ctx {
	const struct bz_policy_request *req;
	size_t user_len, target_len, unix_len, cmd_len;
	int cmd_meta;
	int fwd_ok;               /* forward parsed */
	char fwd_host[256];
	size_t fwd_host_len;
	const char *fwd_port;
	size_t fwd_port_len;
	struct tm utc;
	int have_utc;
	size_t glen[32];          /* lengths of the first groups */
};

static void
ctx_init(struct ctx *c, const struct bz_policy_request *req)
{
	const char *colon;
	size_t hlen, i;

	memset(c, 0, sizeof(*c));
	c->req = req;
	c->user_len = strlen(req->user);
	c->target_len = strlen(req->target);
	c->unix_len = strlen(req->unix_user);
	for (i = 0; i < req->ngroups && i < 32; i++)
		c->glen[i] = req->groups[i] ? strlen(req->groups[i]) : 0;
	if (req->command != NULL) {
		c->cmd_len = strlen(req->command);
		c->cmd_meta = strpbrk(req->command, BZ_SHELL_META) != NULL;
	}
	if (req->forward != NULL &&
	    (colon = strrchr(req->forward, ':')) != NULL &&
	    colon != req->forward && colon[1] != '\0') {
		hlen = (size_t)(colon - req->forward);
		if (req->forward[0] == '[' && hlen > 2 && colon[-1] == ']') {
			hlen -= 2;
			memcpy(c->fwd_host, req->forward + 1,
			    hlen < sizeof(c->fwd_host) ? hlen : 0);
		} else if (hlen < sizeof(c->fwd_host)) {
			memcpy(c->fwd_host, req->forward, hlen);
		}
		if (hlen < sizeof(c->fwd_host)) {
			c->fwd_host[hlen] = '\0';
			c->fwd_host_len = hlen;
			c->fwd_port = colon + 1;
			c->fwd_port_len = strlen(colon + 1);
			c->fwd_ok = 1;
		}
	}
}

static int
any_match(const struct patlist *l, const char *s, size_t len, int fold)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (bz_pat_match(&l->v[i], s, len, fold))
			return 1;
	return 0;
}

static int
match_subject(const struct rule *r, const struct ctx *c)
{
	size_t i;

	if (any_match(&r->users, c->req->user, c->user_len, 1))
		return 1;
	if (r->groups.n == 0)
		return 0;
	for (i = 0; i < c->req->ngroups; i++)
		if (c->req->groups[i] != NULL &&
		    any_match(&r->groups, c->req->groups[i], i < 32 ?
		    c->glen[i] : strlen(c->req->groups[i]), 0))
			return 1;
	return 0;
}

/* NULL when every listed label matches, else the first that does not. */
static const struct label_pat *
failing_label(const struct rule *r, const struct ctx *c, int *present)
{
	const struct bz_policy_request *q = c->req;
	size_t i, j;

	for (i = 0; i < r->nlabels; i++) {
		const struct label_pat *lp = &r->labels[i];
		*present = 0;
		for (j = 0; j < q->nlabels; j++) {
			if (q->labels[j].key == NULL ||
			    q->labels[j].value == NULL ||
			    strcmp(q->labels[j].key, lp->key) != 0)
				continue;
			*present = 1;
			if (bz_pat_match(&lp->value, q->labels[j].value,
			    strlen(q->labels[j].value), 0))
				break;
		}
		if (j == q->nlabels)
			return lp;
	}
	return NULL;
}

static int
match_target(const struct rule *r, const struct ctx *c)
{
	int present;

	if (r->names.n > 0 &&
	    !any_match(&r->names, c->req->target, c->target_len, 0))
		return 0;
	return failing_label(r, c, &present) == NULL;
}

/* In an allow rule a glob never matches root: root is only granted when
 * written literally. Deny rules match generously: "*" denies root too. */
static int
match_unix(const struct rule *r, const struct ctx *c)
{
	int is_root = !r->deny && strcmp(c->req->unix_user, "root") == 0;
	size_t i;

	for (i = 0; i < r->unix_users.n; i++) {
		const struct pat *p = &r->unix_users.v[i];
		if (p->glob && is_root)
			continue;
		if (bz_pat_match(p, c->req->unix_user, c->unix_len, 0))
			return 1;
	}
	return 0;
}

static int
match_command(const struct rule *r, const struct ctx *c)
{
	size_t i;

	for (i = 0; i < r->commands.n; i++) {
		const struct pat *p = &r->commands.v[i];
		/* Deny rules match generously, allow rules strictly. */
		if (p->glob && c->cmd_meta && !r->deny)
			continue;
		if (bz_pat_match(p, c->req->command, c->cmd_len, 0))
			return 1;
	}
	return 0;
}

static int
match_forward(const struct rule *r, const struct ctx *c)
{
	size_t i;

	for (i = 0; i < r->nforwards; i++) {
		const struct fwd_pat *f = &r->forwards[i];
		if (!f->port.glob && (f->port.len != c->fwd_port_len ||
		    memcmp(f->port.s, c->fwd_port, c->fwd_port_len) != 0))
			continue;
		if (bz_pat_match(&f->host, c->fwd_host, c->fwd_host_len, 1))
			return 1;
	}
	return 0;
}

static int
match_action(const struct rule *r, const struct ctx *c)
{
	enum bz_action a = c->req->action;

	if (a == BZ_ACTION_CONNECT) {
		/* Any action for an allow rule; a deny rule must deny all. */
		if (!r->deny)
			return r->actions != 0;
		return r->actions == ACT_ALL && r->commands.n == 0 &&
		    r->nforwards == 0;
	}
	if (!(r->actions & ACT_BIT(a)))
		return 0;
	if (a == BZ_ACTION_EXEC && r->commands.n > 0) {
		/* A missing detail never allows and always denies. */
		if (c->req->command == NULL)
			return r->deny;
		return match_command(r, c);
	}
	if (a == BZ_ACTION_PORT_FORWARD && r->nforwards > 0) {
		if (!c->fwd_ok)
			return r->deny;
		return match_forward(r, c);
	}
	return 1;
}

static int
match_time(const struct rule *r, struct ctx *c)
{
	struct tm lt;
	const struct tm *t;
	int min;

	if (!r->has_hours && r->days == 0)
		return 1;
	if (r->tz == NULL) {
		if (!c->have_utc) {
			bz_tz_localtime(NULL, c->req->now, &c->utc);
			c->have_utc = 1;
		}
		t = &c->utc;
	} else {
		bz_tz_localtime(r->tz, c->req->now, &lt);
		t = &lt;
	}
	if (r->days != 0 && !(r->days & (1u << t->tm_wday)))
		return 0;
	if (r->has_hours) {
		min = t->tm_hour * 60 + t->tm_min;
		if (r->start_min < r->end_min)
			return min >= r->start_min && min < r->end_min;
		return min >= r->start_min || min < r->end_min;
	}
	return 1;
}

static int
rule_matches(const struct rule *r, struct ctx *c)
{
	return match_subject(r, c) && match_target(r, c) &&
	    match_unix(r, c) && match_action(r, c) && match_time(r, c);
}

/* Which dimensions match (for explain). */
static unsigned
rule_dims(const struct rule *r, struct ctx *c)
{
	return (match_subject(r, c) ? D_SUBJECT : 0) |
	    (match_target(r, c) ? D_TARGET : 0) |
	    (match_unix(r, c) ? D_UNIX : 0) |
	    (match_action(r, c) ? D_ACTION : 0) |
	    (match_time(r, c) ? D_TIME : 0);
}

static void
scan(const struct bz_policy_set *set, const size_t *ids, size_t n,
    struct ctx *c, size_t *deny, size_t *allow)
{
	size_t i, id;

	for (i = 0; i < n; i++) {
		const struct rule *r;
		id = ids[i];
		if (id >= *deny && id >= *allow)
			break;
		r = &set->rules[id];
		if (id >= (r->deny ? *deny : *allow))
			continue;
		if (rule_matches(r, c))
			*(r->deny ? deny : allow) = id;
	}
}

static void
scan_entry(const struct bz_policy_set *set, const struct hent *e,
    struct ctx *c, size_t *deny, size_t *allow)
{
	if (e != NULL)
		scan(set, e->ids, e->n, c, deny, allow);
}

/* Rules filed under "key\0value" for one of the request's labels. */
static void
scan_label(const struct bz_policy_set *set, const struct bz_label *l,
    struct ctx *c, size_t *deny, size_t *allow)
{
	const struct hmap *m = &set->lmap;
	size_t kl, vl, i;
	uint64_t h = BZ_HASH_INIT;
	const char *p;

	if (l->key == NULL || l->value == NULL)
		return;
	kl = strlen(l->key);
	vl = strlen(l->value);
	for (p = l->key; *p != '\0'; p++)
		h = bz_hash_step(h, (unsigned char)*p);
	h = bz_hash_step(h, 0);
	for (p = l->value; *p != '\0'; p++)
		h = bz_hash_step(h, (unsigned char)*p);
	for (i = h & (m->cap - 1); m->tab[i].key != NULL;
	    i = (i + 1) & (m->cap - 1)) {
		const struct hent *e = &m->tab[i];
		if (e->klen == kl + 1 + vl && memcmp(e->key, l->key, kl) == 0 &&
		    e->key[kl] == '\0' &&
		    memcmp(e->key + kl + 1, l->value, vl) == 0) {
			scan(set, e->ids, e->n, c, deny, allow);
			return;
		}
	}
}

static unsigned char
fold_byte(unsigned char c, int fold)
{
	return fold && c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Rules filed in x under s itself, a prefix of s or a suffix of s. */
static void
scan_pindex(const struct bz_policy_set *set, const struct pindex *x,
    const char *s, size_t len, struct ctx *c, size_t *deny, size_t *allow)
{
	uint64_t h;
	size_t k;
	int fold = x->exact.fold;

	if (x->exact.count > 0)
		scan_entry(set, bz_hmap_find(&x->exact, s, len), c, deny,
		    allow);
	if (x->prefix.count > 0) {
		h = BZ_HASH_INIT;
		for (k = 1; k <= len && k < x->nplens; k++) {
			h = bz_hash_step(h, fold_byte((unsigned char)s[k - 1],
			    fold));
			if (x->plens[k])
				scan_entry(set, bz_hmap_find_hashed(&x->prefix,
				    s, k, h), c, deny, allow);
		}
	}
	if (x->suffix.count > 0) {
		h = BZ_HASH_INIT;
		for (k = 1; k <= len && k < x->nslens; k++) {
			h = bz_hash_step(h, fold_byte((unsigned char)s[len - k],
			    fold));
			if (x->slens[k])
				scan_entry(set, bz_hmap_find_hashed(&x->suffix,
				    s + len - k, k, h), c, deny, allow);
		}
	}
}

/* Replace control characters so a reason stays one line. */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static int
valid_request(const struct bz_policy_set *set,
    const struct bz_policy_request *req)
{
	return set != NULL && req != NULL && req->user != NULL &&
	    req->target != NULL && req->unix_user != NULL &&
	    (req->groups != NULL || req->ngroups == 0) &&
	    (req->labels != NULL || req->nlabels == 0) &&
	    (unsigned)req->action <= BZ_ACTION_PORT_FORWARD;
}

/* Find the first matching deny and allow rules (SIZE_MAX: none). */
static void
decide(const struct bz_policy_set *set, struct ctx *c, size_t *deny,
    size_t *allow)
{
	const struct bz_policy_request *req = c->req;
	size_t i;

	*deny = *allow = SIZE_MAX;
	scan_pindex(set, &set->tidx, req->target, c->target_len, c, deny,
	    allow);
	scan_pindex(set, &set->uidx, req->user, c->user_len, c, deny, allow);
	for (i = 0; i < req->ngroups; i++)
		if (req->groups[i] != NULL)
			scan_pindex(set, &set->gidx, req->groups[i], i < 32 ?
			    c->glen[i] : strlen(req->groups[i]), c, deny,
			    allow);
	if (set->lmap.count > 0)
		for (i = 0; i < req->nlabels; i++)
			scan_label(set, &req->labels[i], c, deny, allow);
	scan_pindex(set, &set->xidx, req->unix_user, c->unix_len, c, deny,
	    allow);
	scan(set, set->generic, set->ngeneric, c, deny, allow);
}

void
bz_policy_evaluate(const struct bz_policy_set *set,
    const struct bz_policy_request *req, struct bz_policy_decision *d)
{
	struct ctx c;
	size_t deny, allow;

	memset(d, 0, sizeof(*d));
	if (!valid_request(set, req)) {
		snprintf(d->reason, sizeof(d->reason), "invalid request");
		return;
	}
	ctx_init(&c, req);
	decide(set, &c, &deny, &allow);
	if (deny != SIZE_MAX) {
		snprintf(d->rule, sizeof(d->rule), "%s", set->rules[deny].name);
		snprintf(d->reason, sizeof(d->reason), "denied by rule \"%s\"",
		    set->rules[deny].name);
	} else if (allow != SIZE_MAX) {
		d->allowed = 1;
		snprintf(d->rule, sizeof(d->rule), "%s",
		    set->rules[allow].name);
		d->mfa_max_age = set->rules[allow].mfa_max_age;
	} else {
		snprintf(d->reason, sizeof(d->reason), "no policy allows %s "
		    "to %s%s%.100s as %s on %s", req->user,
		    bz_action_name(req->action), req->forward != NULL &&
		    req->action == BZ_ACTION_PORT_FORWARD ? " to " : "",
		    req->forward != NULL && req->action ==
		    BZ_ACTION_PORT_FORWARD ? req->forward : "",
		    req->unix_user, req->target);
	}
	one_line(d->reason);
}

void
bz_policy_unix_users(const struct bz_policy_set *set, const char *user,
    const char *const *groups, size_t ngroups,
    void (*fn)(const char *unix_user, void *arg), void *arg)
{
	struct bz_policy_request req;
	struct ctx c;
	size_t i, j;

	memset(&req, 0, sizeof(req));
	req.user = user;
	req.groups = groups;
	req.ngroups = ngroups;
	req.target = req.unix_user = "";
	ctx_init(&c, &req);
	for (i = 0; i < set->nrules; i++) {
		const struct rule *r = &set->rules[i];

		if (r->deny || !match_subject(r, &c))
			continue;
		for (j = 0; j < r->unix_users.n; j++)
			if (!r->unix_users.v[j].glob)
				fn(r->unix_users.v[j].s, arg);
	}
}

size_t
bz_policy_target_users(const struct bz_policy_set *set,
    const struct bz_policy_request *req,
    void (*fn)(const char *unix_user, void *arg), void *arg)
{
	struct bz_policy_request q = *req;
	struct ctx c;
	size_t i, j, n = 0;

	q.unix_user = "";
	q.action = BZ_ACTION_CONNECT;
	q.command = q.forward = NULL;
	if (!valid_request(set, &q))
		return 0;
	ctx_init(&c, &q);
	for (i = 0; i < set->nrules; i++) {
		const struct rule *r = &set->rules[i];

		if (r->deny || !match_subject(r, &c) || !match_target(r, &c) ||
		    !match_time(r, &c))
			continue;
		n++;
		for (j = 0; j < r->unix_users.n; j++)
			fn(r->unix_users.v[j].s, arg);
	}
	return n;
}

int
bz_policy_rule_matches(const struct bz_policy_set *set, size_t i,
    const struct bz_policy_request *req)
{
	struct ctx c;

	if (!valid_request(set, req) || i >= set->nrules)
		return -1;
	ctx_init(&c, req);
	return rule_matches(&set->rules[i], &c);
}

/* ---- explain ------------------------------------------------------------ */

struct sb {
	char *p;
	size_t len, cap;
};

static void sb_add(struct sb *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_add(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->cap == 0 || b->len >= b->cap - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len += (size_t)n < b->cap - b->len ? (size_t)n :
		    b->cap - b->len - 1;
}

static void
sb_list(struct sb *b, const struct patlist *l)
{
	size_t i;

	sb_add(b, "[");
	for (i = 0; i < l->n && i < 4; i++)
		sb_add(b, "%s%s", i ? ", " : "", l->v[i].s);
	sb_add(b, "%s]", l->n > 4 ? ", ..." : "");
}

static void
explain_miss(struct sb *b, const struct rule *r, struct ctx *c,
    unsigned dims)
{
	const struct bz_policy_request *q = c->req;
	const struct label_pat *lp;
	const char *sep = "";
	int present;
	size_t i;

	if (!(dims & D_SUBJECT)) {
		sb_add(b, "%ssubject (user %s", sep, q->user);
		if (q->ngroups > 0) {
			sb_add(b, ", groups ");
			for (i = 0; i < q->ngroups && i < 4; i++)
				sb_add(b, "%s%s", i ? ", " : "",
				    q->groups[i] ? q->groups[i] : "");
			if (q->ngroups > 4)
				sb_add(b, ", ...");
		}
		sb_add(b, " not in users ");
		sb_list(b, &r->users);
		sb_add(b, " or groups ");
		sb_list(b, &r->groups);
		sb_add(b, ")");
		sep = "; ";
	}
	if (!(dims & D_TARGET)) {
		if (r->names.n > 0 &&
		    !any_match(&r->names, q->target, c->target_len, 0)) {
			sb_add(b, "%starget (%s not in names ", sep, q->target);
			sb_list(b, &r->names);
			sb_add(b, ")");
		} else if ((lp = failing_label(r, c, &present)) != NULL) {
			if (present)
				sb_add(b, "%starget (label %s of %s does not "
				    "match \"%s\")", sep, lp->key, q->target,
				    lp->value.s);
			else
				sb_add(b, "%starget (%s has no label %s)", sep,
				    q->target, lp->key);
		}
		sep = "; ";
	}
	if (!(dims & D_UNIX)) {
		sb_add(b, "%sunix user (%s not in unix_users ", sep,
		    q->unix_user);
		sb_list(b, &r->unix_users);
		if (strcmp(q->unix_user, "root") == 0)
			sb_add(b, "; root only matches when written "
			    "literally");
		sb_add(b, ")");
		sep = "; ";
	}
	if (!(dims & D_ACTION)) {
		if (q->action == BZ_ACTION_CONNECT ||
		    !(r->actions & ACT_BIT(q->action)))
			sb_add(b, "%saction (%s is not allowed)", sep,
			    bz_action_name(q->action));
		else if (q->action == BZ_ACTION_EXEC) {
			sb_add(b, "%scommand (\"%s\" not in exec ", sep,
			    q->command ? q->command : "");
			sb_list(b, &r->commands);
			if (c->cmd_meta)
				sb_add(b, "; a command with shell "
				    "metacharacters only matches a pattern "
				    "without wildcards");
			sb_add(b, ")");
		} else {
			sb_add(b, "%sforward (%s not in port_forward", sep,
			    q->forward ? q->forward : "none");
			for (i = 0; i < r->nforwards && i < 4; i++)
				sb_add(b, "%s%s", i ? ", " : " [",
				    r->forwards[i].text);
			sb_add(b, "%s)", r->nforwards ? "]" : "");
		}
		sep = "; ";
	}
	if (!(dims & D_TIME)) {
		sb_add(b, "%stime (outside", sep);
		if (r->has_hours)
			sb_add(b, " hours %s", r->hours);
		if (r->days != 0) {
			static const char names[] = "sunmontuewedthufrisat";
			const char *s2 = " on ";
			for (i = 0; i < 7; i++)
				if (r->days & (1u << ((i + 1) % 7))) {
					sb_add(b, "%s%.3s", s2,
					    names + ((i + 1) % 7) * 3);
					s2 = ",";
				}
		}
		sb_add(b, " %s)", r->tzname);
	}
}

static void
dims_list(struct sb *b, unsigned dims)
{
	static const char *const names[] = {"subject", "target", "unix user",
	    "action", "time"};
	int left = __builtin_popcount(dims);
	size_t i;

	for (i = 0; i < 5; i++)
		if (dims & (1u << i)) {
			left--;
			sb_add(b, "%s%s", names[i], left > 1 ? ", " :
			    left == 1 ? " and " : "");
		}
}

void
bz_policy_explain(const struct bz_policy_set *set,
    const struct bz_policy_request *req, struct bz_policy_decision *d,
    char *why, size_t whylen)
{
	struct sb b = {why, 0, whylen};
	struct ctx c;
	size_t deny, allow, i, best = SIZE_MAX;
	unsigned dims, best_dims = 0;
	int best_n = -1, n;
	const struct rule *r;

	bz_policy_evaluate(set, req, d);
	if (whylen == 0)
		return;
	why[0] = '\0';
	if (!valid_request(set, req)) {
		sb_add(&b, "%s", d->reason);
		return;
	}
	ctx_init(&c, req);
	decide(set, &c, &deny, &allow);
	if (deny != SIZE_MAX) {
		r = &set->rules[deny];
		sb_add(&b, "denied by rule \"%s\" (%s:%d:%d); deny rules win "
		    "over allow rules", r->name, r->file, r->line, r->column);
		if (allow != SIZE_MAX)
			sb_add(&b, "; rule \"%s\" would otherwise allow it",
			    set->rules[allow].name);
	} else if (allow != SIZE_MAX) {
		r = &set->rules[allow];
		sb_add(&b, "allowed by rule \"%s\" (%s:%d:%d)", r->name,
		    r->file, r->line, r->column);
	} else {
		for (i = 0; i < set->nrules; i++) {
			if (set->rules[i].deny)
				continue;
			dims = rule_dims(&set->rules[i], &c);
			n = __builtin_popcount(dims);
			if (n > best_n) {
				best_n = n;
				best = i;
				best_dims = dims;
			}
		}
		sb_add(&b, "%s", d->reason);
		if (best == SIZE_MAX) {
			sb_add(&b, " (the set has no allow rules)");
		} else {
			r = &set->rules[best];
			sb_add(&b, "; closest rule \"%s\" (%s:%d:%d)", r->name,
			    r->file, r->line, r->column);
			if (best_dims != 0) {
				sb_add(&b, " matches ");
				dims_list(&b, best_dims);
			}
			sb_add(&b, " but not ");
			explain_miss(&b, r, &c, best_dims);
		}
	}
	one_line(why);
}
