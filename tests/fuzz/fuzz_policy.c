/*
 * fuzz_policy.c: libFuzzer target for the policy loader, evaluator,
 * linter and explainer (and, for inputs starting "TZif", the zone-file
 * reader). Any input must load or fail cleanly: no crash, leak or UB.
 * Build and run: tests/fuzz/run_policy_fuzz.sh SECONDS
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy.h"
#include "tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const groups[] = {"ops", "dev", "team-red"};
	static const struct bz_label labels[] = {{"env", "prod"},
	    {"tier", "web"}};
	struct bz_policy_set *set = NULL;
	struct bz_policy_errors errs, warns;
	struct bz_policy_request q;
	struct bz_policy_decision d;
	struct bz_tz *tz = NULL;
	char why[512], line[1024];
	size_t i;
	int a;

	if (size >= 4 && memcmp(data, "TZif", 4) == 0) {
		if (bz_tz_parse(data, size, &tz, NULL, 0) == 0) {
			(void)bz_tz_offset(tz, 0);
			(void)bz_tz_offset(tz, 1705320000);
			(void)bz_tz_offset(tz, -((time_t)1 << 40));
			(void)bz_tz_offset(tz, (time_t)1 << 40);
			bz_tz_free(tz);
		}
		return 0;
	}
	if (bz_policy_load_buffer("fuzz.yaml", (const char *)data, size, &set,
	    &errs) != 0) {
		for (i = 0; i < errs.count; i++)
			bz_policy_error_format(&errs.items[i], line,
			    sizeof(line));
		bz_policy_errors_free(&errs);
		return 0;
	}
	bz_policy_errors_free(&errs);
	if (bz_policy_lint(set, &warns) == 0)
		bz_policy_errors_free(&warns);
	memset(&q, 0, sizeof(q));
	q.user = "alice@example.com";
	q.groups = groups;
	q.ngroups = 3;
	q.target = "web-1";
	q.labels = labels;
	q.nlabels = 2;
	q.now = 1705320000;
	for (a = BZ_ACTION_CONNECT; a <= BZ_ACTION_PORT_FORWARD; a++) {
		q.action = (enum bz_action)a;
		q.command = a == BZ_ACTION_EXEC ? "rsync --server . /x" : NULL;
		q.forward = a == BZ_ACTION_PORT_FORWARD ? "db-1:5432" : NULL;
		q.unix_user = a % 2 ? "root" : "deploy";
		bz_policy_evaluate(set, &q, &d);
		bz_policy_explain(set, &q, &d, why, sizeof(why));
	}
	bz_policy_free(set);
	return 0;
}
