/* log.c: leveled stderr logging; the only configuration-like globals. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *log_progname = "bz";
static enum bz_log_level log_level = BZ_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void
bz_log_init(const char *progname, enum bz_log_level level)
{
	log_progname = progname;
	log_level = level;
}

enum bz_log_level
bz_log_get_level(void)
{
	return log_level;
}

void
bz_log(enum bz_log_level level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	char line[2048];
	va_list ap;
	size_t i;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One line per message: control characters from peers become '?'. */
	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s: %s: %s\n", log_progname, names[level], line);
	pthread_mutex_unlock(&log_lock);
}
