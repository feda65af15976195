/*
 * labels.c: names and labels as bzproxy accepts them: agent names and
 * label keys are short tokens ([A-Za-z0-9._-]), label values a small safe
 * charset, so they can appear in logs, the audit and policies unquoted.
 */
#include "bzproxy.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

static const char name_chars[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

int
bzp_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n > 0 && n <= max && s[0] != '-' && s[0] != '.' &&
	    strspn(s, name_chars) == n;
}

int
bzp_label_value_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/@+=-") == n;
}

int
bzp_labels_parse(const char *text, json_t **obj, struct bz_label **v,
    size_t *n)
{
	json_t *o, *val;
	const char *k;
	size_t i = 0;

	*obj = NULL;
	*v = NULL;
	*n = 0;
	if ((o = json_loads(text, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(o) || json_object_size(o) > BZP_LABELS_MAX) {
		json_decref(o);
		return BZ_ERR_FORMAT;
	}
	if ((*v = calloc(json_object_size(o) + 1, sizeof(**v))) == NULL) {
		json_decref(o);
		return BZ_ERR_ALLOC;
	}
	json_object_foreach(o, k, val) {
		if (!json_is_string(val)) {
			free(*v);
			*v = NULL;
			json_decref(o);
			return BZ_ERR_FORMAT;
		}
		(*v)[i].key = k;
		(*v)[i].value = json_string_value(val);
		i++;
	}
	*obj = o;
	*n = i;
	return BZ_OK;
}
