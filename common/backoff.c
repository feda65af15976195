/* backoff.c: jittered exponential backoff; see backoff.h. */
#include "backoff.h"

#include <time.h>
#include <sodium.h>

uint32_t
bz_backoff_ceiling(unsigned attempt, uint32_t base_ms, uint32_t cap_ms)
{
	uint64_t c = base_ms;

	/* Shift step by step so a large attempt cannot overflow. */
	while (attempt-- > 0 && c < cap_ms)
		c <<= 1;
	return c < cap_ms ? (uint32_t)c : cap_ms;
}

uint32_t
bz_backoff_delay(unsigned attempt, uint32_t base_ms, uint32_t cap_ms)
{
	uint32_t ceil = bz_backoff_ceiling(attempt, base_ms, cap_ms);

	/* Full jitter: many agents dropped by one bzproxy restart do not
	 * all come back in the same instant. */
	return ceil == UINT32_MAX ? randombytes_random() :
	    randombytes_uniform(ceil + 1);
}

int64_t
bz_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
