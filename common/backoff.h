/*
 * backoff.h: jittered exponential backoff for reconnects and refetches,
 * and the monotonic clock its delays are measured on.
 */
#ifndef BZ_BACKOFF_H
#define BZ_BACKOFF_H

#include <stdint.h>

/* Upper bound of the delay before retry number attempt (0-based):
 * min(cap, base * 2^attempt). */
uint32_t bz_backoff_ceiling(unsigned attempt, uint32_t base_ms,
    uint32_t cap_ms);
/* Full jitter: uniform in [0, ceiling] (libsodium randombytes_uniform). */
uint32_t bz_backoff_delay(unsigned attempt, uint32_t base_ms,
    uint32_t cap_ms);

/* Monotonic clock in milliseconds. */
int64_t bz_now_ms(void);

#endif
