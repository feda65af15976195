/*
 * policy_cmd.h: `bzproxy policy check|explain|test`, the tools a policy
 * repository runs in its own CI (policies/README.md).
 */
#ifndef BZP_POLICY_CMD_H
#define BZP_POLICY_CMD_H

/*
 * argv[0] is "check", "explain" or "test"; argv[argc] is NULL.
 *   check [--strict] PATH          exit 0 valid, 1 errors (or warnings
 *                                  with --strict), 2 usage
 *   explain PATH --user U ...      exit 0 allow, 1 deny, 2 usage or a
 *                                  policy set that does not load
 *   test PATH TESTS.yaml           TAP on stdout; exit 0 iff all pass,
 *                                  1 failures, 2 usage or load errors
 * Errors go to stderr as FILE:LINE:COLUMN: MESSAGE.
 */
int bz_policy_cmd(int argc, char **argv);

#endif
