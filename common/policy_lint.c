/*
 * policy_lint.c: warnings about a loaded policy set (rules that can never
 * match, patterns that do not mean what they seem); see policy.h.
 *
 * The shadowing check is deliberately conservative: a deny rule covers an
 * allow rule only when each of its patterns is identical to, "*", or a glob
 * matching a literal of the allow rule. It never warns wrongly; it may miss.
 */
#include "policy.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "policy_int.h"

static int warn(struct bz_policy_errors *, const char *, int, int,
    const char *, ...) __attribute__((format(printf, 5, 6)));

static int
warn(struct bz_policy_errors *w, const char *file, int line, int col,
    const char *fmt, ...)
{
	struct bz_policy_error *n, *it;
	va_list ap;

	if (w->count >= BZ_POLICY_ERRORS_MAX)
		return BZ_OK;
	if (w->count == 0 || (w->count >= 8 &&
	    (w->count & (w->count - 1)) == 0)) {
		size_t ncap = w->count ? w->count * 2 : 8;
		if ((n = reallocarray(w->items, ncap, sizeof(*n))) == NULL)
			return BZ_ERR_ALLOC;
		w->items = n;
	}
	it = &w->items[w->count++];
	memset(it, 0, sizeof(*it));
	snprintf(it->file, sizeof(it->file), "%s", file);
	it->line = line;
	it->column = col;
	va_start(ap, fmt);
	vsnprintf(it->message, sizeof(it->message), fmt, ap);
	va_end(ap);
	return BZ_OK;
}

static int
is_star(const struct pat *p)
{
	return p->len == 1 && p->s[0] == '*';
}

/* Does deny pattern d match everything allow pattern a matches? */
static int
pat_covers(const struct pat *d, const struct pat *a, int fold)
{
	if (d->len == a->len && (fold ? strcasecmp(d->s, a->s) :
	    strcmp(d->s, a->s)) == 0)
		return 1;
	if (is_star(d))
		return 1;
	return d->glob && !a->glob &&
	    fnmatch(d->s, a->s, fold ? FNM_CASEFOLD : 0) == 0;
}

static int
list_has_star(const struct patlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (is_star(&l->v[i]))
			return 1;
	return 0;
}

/* Every pattern of a covered by some pattern of d. */
static int
list_covers(const struct patlist *d, const struct patlist *a, int fold)
{
	size_t i, j;

	for (i = 0; i < a->n; i++) {
		for (j = 0; j < d->n; j++)
			if (pat_covers(&d->v[j], &a->v[i], fold))
				break;
		if (j == d->n)
			return 0;
	}
	return 1;
}

static int
unix_covers(const struct patlist *d, const struct patlist *a)
{
	size_t i, j;

	for (i = 0; i < a->n; i++) {
		const struct pat *ap = &a->v[i];
		int is_root = !ap->glob && strcmp(ap->s, "root") == 0;
		for (j = 0; j < d->n; j++) {
			const struct pat *dp = &d->v[j];
			/* A deny glob matches root too. */
			if (is_root ? !dp->glob ? strcmp(dp->s, "root") == 0 :
			    fnmatch(dp->s, "root", 0) == 0 :
			    pat_covers(dp, ap, 0))
				break;
		}
		if (j == d->n)
			return 0;
	}
	return 1;
}

static int
subject_covers(const struct rule *d, const struct rule *a)
{
	if (list_has_star(&d->users))
		return 1;
	return list_covers(&d->users, &a->users, 1) &&
	    list_covers(&d->groups, &a->groups, 0);
}

static int
target_covers(const struct rule *d, const struct rule *a)
{
	size_t i, j;

	if (d->names.n > 0 && !list_has_star(&d->names) &&
	    (a->names.n == 0 || !list_covers(&d->names, &a->names, 0)))
		return 0;
	for (i = 0; i < d->nlabels; i++) {
		for (j = 0; j < a->nlabels; j++)
			if (strcmp(d->labels[i].key, a->labels[j].key) == 0 &&
			    pat_covers(&d->labels[i].value,
			    &a->labels[j].value, 0))
				break;
		if (j == a->nlabels)
			return 0;
	}
	return 1;
}

static int
action_covers(const struct rule *d, const struct rule *a)
{
	size_t i, j;

	if ((a->actions & ~d->actions) != 0)
		return 0;
	if ((a->actions & ACT_BIT(BZ_ACTION_EXEC)) && d->commands.n > 0 &&
	    (a->commands.n == 0 ||
	    !list_covers(&d->commands, &a->commands, 0)))
		return 0;
	if ((a->actions & ACT_BIT(BZ_ACTION_PORT_FORWARD)) &&
	    d->nforwards > 0) {
		for (i = 0; i < a->nforwards; i++) {
			for (j = 0; j < d->nforwards; j++)
				if (pat_covers(&d->forwards[j].host,
				    &a->forwards[i].host, 1) &&
				    (d->forwards[j].port.glob ||
				    strcmp(d->forwards[j].port.s,
				    a->forwards[i].port.s) == 0))
					break;
			if (j == d->nforwards)
				return 0;
		}
	}
	return 1;
}

static int
time_covers(const struct rule *d, const struct rule *a)
{
	if (!d->has_hours && d->days == 0)
		return 1;
	return d->has_hours == a->has_hours && d->days == a->days &&
	    d->tz == a->tz && (!d->has_hours ||
	    (d->start_min == a->start_min && d->end_min == a->end_min));
}

static int
dup_patterns(struct bz_policy_errors *w, const struct rule *r,
    const struct patlist *l, const char *what)
{
	size_t i, j;
	int rc;

	for (i = 1; i < l->n; i++)
		for (j = 0; j < i; j++)
			if (strcmp(l->v[i].s, l->v[j].s) == 0) {
				if ((rc = warn(w, r->file, l->v[i].line,
				    l->v[i].col, "\"%s\" appears twice in "
				    "\"%s\" of policy \"%s\"", l->v[i].s, what,
				    r->name)) != 0)
					return rc;
				break;
			}
	return BZ_OK;
}

int
bz_policy_lint(const struct bz_policy_set *set,
    struct bz_policy_errors *w)
{
	size_t i, j;
	int rc;

	memset(w, 0, sizeof(*w));
	if (set == NULL)
		return BZ_ERR_INVALID;
	for (i = 0; i < set->nrules; i++) {
		const struct rule *r = &set->rules[i];
		for (j = 0; j < r->unix_users.n; j++) {
			const struct pat *p = &r->unix_users.v[j];
			/* "*" and the like mean "anyone but root"; a glob
			 * that looks written for root probably meant it. */
			if (!r->deny && p->glob &&
			    fnmatch(p->s, "root", 0) == 0 &&
			    fnmatch(p->s, "zz-unlikely", 0) != 0 &&
			    (rc = warn(w, r->file, p->line, p->col,
			    "\"%s\" in unix_users of policy \"%s\" does not "
			    "match root: a glob never does; write \"root\" "
			    "if you mean it", p->s, r->name)) != 0)
				goto fail;
		}
		if ((rc = dup_patterns(w, r, &r->users, "users")) != 0 ||
		    (rc = dup_patterns(w, r, &r->groups, "groups")) != 0 ||
		    (rc = dup_patterns(w, r, &r->names, "names")) != 0 ||
		    (rc = dup_patterns(w, r, &r->unix_users,
		    "unix_users")) != 0 ||
		    (rc = dup_patterns(w, r, &r->commands, "exec")) != 0)
			goto fail;
		if (r->deny)
			continue;
		for (j = 0; j < set->nrules; j++) {
			const struct rule *d = &set->rules[j];
			if (!d->deny || !action_covers(d, r) ||
			    !subject_covers(d, r) || !target_covers(d, r) ||
			    !unix_covers(&d->unix_users, &r->unix_users) ||
			    !time_covers(d, r))
				continue;
			if ((rc = warn(w, r->file, r->line, r->column,
			    "policy \"%s\" never allows anything: deny policy "
			    "\"%s\" (%s:%d:%d) covers all of it", r->name,
			    d->name, d->file, d->line, d->column)) != 0)
				goto fail;
			break;
		}
	}
	return BZ_OK;
fail:
	bz_policy_errors_free(w);
	return rc;
}
