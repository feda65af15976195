/*
 * client_targets.c: the answer to `bzsshd targets`: the enrolled agents
 * the asking user's policies let them reach (an allow rule matches them,
 * the agent and the time; deny rules are for the real request to apply),
 * each with its labels, whether it is connected now, when its link last
 * came up or went down, and the unix users those rules name.
 */
#include "bzproxy.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"

struct targets_ctx {
	struct bzp_server *s;
	const struct bzp_client *cl;
	json_t *list;
	time_t now;
};

static void
add_pattern(const char *unix_user, void *arg)
{
	json_t *users = arg;
	size_t i;
	json_t *v;

	json_array_foreach(users, i, v)
		if (strcmp(json_string_value(v), unix_user) == 0)
			return;
	json_array_append_new(users, json_string(unix_user));
}

static int
one_target(const char *name, const char *labels, int64_t last_seen,
    void *arg)
{
	struct targets_ctx *t = arg;
	struct bz_policy_request req;
	struct bz_label *lv = NULL;
	json_t *obj = NULL, *users = NULL, *o = NULL;
	size_t nl = 0;
	int r = BZ_ERR_ALLOC;

	if (bzp_labels_parse(labels, &obj, &lv, &nl) != 0)
		return BZ_OK; /* a bad row: not listed, not fatal */
	memset(&req, 0, sizeof(req));
	req.user = t->cl->user;
	req.groups = t->cl->group_v;
	req.ngroups = t->cl->ngroups;
	req.target = name;
	req.labels = lv;
	req.nlabels = nl;
	req.now = t->now;
	if ((users = json_array()) == NULL)
		goto out;
	if (bz_policy_target_users(t->s->policy, &req, add_pattern,
	    users) == 0) {
		r = BZ_OK;
		goto out;
	}
	if ((o = json_pack("{s:s, s:O, s:b, s:I, s:O}", "name", name,
	    "labels", obj, "online", bzp_agent_find(t->s, name) != NULL,
	    "last_seen", (json_int_t)last_seen, "unix_users", users)) ==
	    NULL || json_array_append_new(t->list, o) != 0)
		goto out;
	r = BZ_OK;
 out:
	json_decref(users);
	json_decref(obj);
	free(lv);
	return r;
}

json_t *
bzp_targets_answer(struct bzp_server *s, const struct bzp_client *cl)
{
	struct targets_ctx t;
	json_t *ans;

	memset(&t, 0, sizeof(t));
	t.s = s;
	t.cl = cl;
	t.now = time(NULL);
	if ((t.list = json_array()) == NULL)
		return NULL;
	if (bzp_store_agent_each(s->store, one_target, &t) != 0) {
		json_decref(t.list);
		return NULL;
	}
	ans = json_pack("{s:s, s:o}", "t", "targets_ok", "targets", t.list);
	return ans;
}
