/*
 * classify.h: which policy action a channel request asks for
 * (policies/README.md, "How a request is classified"). bzproxy decides on
 * the action this returns; nothing else guesses it.
 */
#ifndef BZ_CLASSIFY_H
#define BZ_CLASSIFY_H

#include "policy.h"

/* Characters that let a shell run more than one plain command. */
#define BZ_SHELL_META ";&|`$<>()\n\r"

/*
 * An exec request's command: BZ_ACTION_SCP when it is the server side of
 * scp's legacy protocol ("scp", or a path ending in "/scp", then only the
 * flags -d -p -q -r -v with -t or -f, an optional "--", and at least one
 * path, with no character of BZ_SHELL_META anywhere), else
 * BZ_ACTION_EXEC.
 */
enum bz_action bz_classify_exec(const char *command);

#endif
