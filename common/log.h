/*
 * log.h: human-readable diagnostics on stderr with levels. The audit log is
 * separate (audit.h). Never pass secrets (seeds, keys, tokens) to these.
 */
#ifndef BZ_LOG_H
#define BZ_LOG_H

enum bz_log_level {
	BZ_LOG_ERROR = 0,
	BZ_LOG_WARN = 1,
	BZ_LOG_INFO = 2,
	BZ_LOG_DEBUG = 3,
};

/* Configure once at start-up: program name prefix and the highest level
 * printed (default BZ_LOG_INFO; -v sets BZ_LOG_DEBUG). */
void bz_log_init(const char *progname, enum bz_log_level level);
enum bz_log_level bz_log_get_level(void);

void bz_log(enum bz_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define bz_error(...) bz_log(BZ_LOG_ERROR, __VA_ARGS__)
#define bz_warn(...) bz_log(BZ_LOG_WARN, __VA_ARGS__)
#define bz_info(...) bz_log(BZ_LOG_INFO, __VA_ARGS__)
#define bz_debug(...) bz_log(BZ_LOG_DEBUG, __VA_ARGS__)

#endif
