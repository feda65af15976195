/*
 * tz.c: UTC offsets of named time zones from TZif files and POSIX TZ
 * strings, without touching the process's TZ; see tz.h.
 */
#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

#define TZ_NAME_MAX 128
#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"

/* One end of a daylight-saving period in a POSIX TZ string. */
struct tz_rule {
	char kind;   /* 'J' (1-365, no Feb 29), 'N' (0-365), 'M' (m.w.d) */
	int n, m, w, d;
	long time;   /* seconds after local midnight; may be negative */
};

struct posix_tz {
	int valid;
	long std_off;    /* seconds east of UTC */
	int has_dst;
	long dst_off;
	struct tz_rule start, end;
};

struct bz_tz {
	int64_t *times;  /* transitions, ascending */
	long *offs;      /* offset in force from times[i] */
	size_t n;
	long first_off;  /* before the first transition */
	struct posix_tz footer;
};

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static long long
days_from_civil(long long y, unsigned m, unsigned d)
{
	long long era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

static long long
year_from_days(long long z)
{
	long long era, y;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = (long long)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	return y + (mp >= 10);
}

static int
is_leap(long long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned
month_days(long long y, unsigned m)
{
	static const unsigned len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31};

	return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Digits as a number of at most max; advances *s. -1 when none. */
static long
parse_num(const char **s, long max)
{
	long v = 0;
	int any = 0;

	while (**s >= '0' && **s <= '9') {
		v = v * 10 + (**s - '0');
		if (v > max)
			return -1;
		(*s)++;
		any = 1;
	}
	return any ? v : -1;
}

/* [+-]hh[:mm[:ss]] as seconds; hours up to maxh. */
static int
parse_hms(const char **s, long maxh, long *out)
{
	long sign = 1, h, m = 0, sec = 0;

	if (**s == '+' || **s == '-') {
		sign = **s == '-' ? -1 : 1;
		(*s)++;
	}
	if ((h = parse_num(s, maxh)) < 0)
		return -1;
	if (**s == ':') {
		(*s)++;
		if ((m = parse_num(s, 59)) < 0)
			return -1;
		if (**s == ':') {
			(*s)++;
			if ((sec = parse_num(s, 59)) < 0)
				return -1;
		}
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	return 0;
}

static int
parse_tz_name(const char **s)
{
	const char *p = *s;

	if (*p == '<') {
		while (*p != '\0' && *p != '>')
			p++;
		if (*p != '>' || p - *s < 4)
			return -1;
		*s = p + 1;
		return 0;
	}
	while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
		p++;
	if (p - *s < 3)
		return -1;
	*s = p;
	return 0;
}

static int
parse_rule(const char **s, struct tz_rule *r)
{
	long v;

	memset(r, 0, sizeof(*r));
	r->time = 7200;
	if (**s == 'J') {
		(*s)++;
		r->kind = 'J';
		if ((v = parse_num(s, 365)) < 1)
			return -1;
		r->n = (int)v;
	} else if (**s == 'M') {
		(*s)++;
		r->kind = 'M';
		if ((v = parse_num(s, 12)) < 1)
			return -1;
		r->m = (int)v;
		if (*(*s)++ != '.' || (v = parse_num(s, 5)) < 1)
			return -1;
		r->w = (int)v;
		if (*(*s)++ != '.' || (v = parse_num(s, 6)) < 0)
			return -1;
		r->d = (int)v;
	} else {
		r->kind = 'N';
		if ((v = parse_num(s, 365)) < 0)
			return -1;
		r->n = (int)v;
	}
	if (**s == '/') {
		(*s)++;
		if (parse_hms(s, 167, &r->time) != 0)
			return -1;
	}
	return 0;
}

/* POSIX TZ string, e.g. "CET-1CEST,M3.5.0,M10.5.0/3". */
static int
parse_posix(const char *s, struct posix_tz *tz)
{
	long off;

	memset(tz, 0, sizeof(*tz));
	if (parse_tz_name(&s) != 0 || parse_hms(&s, 24, &off) != 0)
		return -1;
	tz->std_off = -off;
	if (*s == '\0') {
		tz->valid = 1;
		return 0;
	}
	if (parse_tz_name(&s) != 0)
		return -1;
	tz->has_dst = 1;
	tz->dst_off = tz->std_off + 3600;
	if (*s != ',' && *s != '\0') {
		if (parse_hms(&s, 24, &off) != 0)
			return -1;
		tz->dst_off = -off;
	}
	if (*s == '\0') {
		/* No rule: POSIX leaves it to the implementation; US rules. */
		s = ",M3.2.0,M11.1.0";
	}
	if (*s++ != ',' || parse_rule(&s, &tz->start) != 0 || *s++ != ',' ||
	    parse_rule(&s, &tz->end) != 0 || *s != '\0')
		return -1;
	tz->valid = 1;
	return 0;
}

/* Days since the epoch of the day a rule names in year y. */
static long long
rule_day(const struct tz_rule *r, long long y)
{
	long long jan1 = days_from_civil(y, 1, 1), first;
	int dow, day;

	switch (r->kind) {
	case 'J':
		return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
	case 'N':
		return jan1 + r->n;
	default:
		first = days_from_civil(y, (unsigned)r->m, 1);
		dow = (int)(((first + 4) % 7 + 7) % 7); /* 1970-01-01: Thu */
		day = 1 + (r->d - dow + 7) % 7 + (r->w - 1) * 7;
		while (day > (int)month_days(y, (unsigned)r->m))
			day -= 7;
		return first + day - 1;
	}
}

static long
posix_offset(const struct posix_tz *tz, int64_t t)
{
	long long y, start, end;
	int dst;

	/* Beyond +-30 million years nobody keeps daylight saving time. */
	if (!tz->has_dst || t > (int64_t)1e15 || t < -(int64_t)1e15)
		return tz->std_off;
	y = year_from_days((t + tz->std_off) / 86400 -
	    ((t + tz->std_off) % 86400 < 0));
	start = rule_day(&tz->start, y) * 86400 + tz->start.time - tz->std_off;
	end = rule_day(&tz->end, y) * 86400 + tz->end.time - tz->dst_off;
	if (start < end)
		dst = t >= start && t < end;
	else
		dst = !(t >= end && t < start);
	return dst ? tz->dst_off : tz->std_off;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

void
bz_tz_free(struct bz_tz *tz)
{
	if (tz == NULL)
		return;
	free(tz->times);
	free(tz->offs);
	free(tz);
}

int
bz_tz_parse(const unsigned char *p, size_t n, struct bz_tz **out, char *err,
    size_t errlen)
{
	struct bz_tz *tz = NULL;
	const unsigned char *hdr = p, *data, *types, *idx;
	uint32_t isut, isstd, leap, timecnt, typecnt, charcnt;
	size_t tsize = 4, need, i, foot;
	char footer[256];
	int r = BZ_ERR_FORMAT;

	*out = NULL;
	if (n < 44 || memcmp(p, "TZif", 4) != 0)
		goto bad;
	for (;;) {
		isut = be32(hdr + 20);
		isstd = be32(hdr + 24);
		leap = be32(hdr + 28);
		timecnt = be32(hdr + 32);
		typecnt = be32(hdr + 36);
		charcnt = be32(hdr + 40);
		if (isut > n || isstd > n || leap > n || timecnt > n ||
		    typecnt > n || charcnt > n || typecnt == 0)
			goto bad;
		need = (size_t)timecnt * (tsize + 1) + (size_t)typecnt * 6 +
		    charcnt + (size_t)leap * (tsize + 4) + isstd + isut;
		if (need > n - (size_t)(hdr + 44 - p))
			goto bad;
		data = hdr + 44;
		if (tsize == 4 && p[4] >= '2') {
			/* Skip the 32-bit block: use the 64-bit one. */
			hdr = data + need;
			if ((size_t)(hdr - p) + 44 > n ||
			    memcmp(hdr, "TZif", 4) != 0)
				goto bad;
			tsize = 8;
			continue;
		}
		break;
	}
	if ((tz = calloc(1, sizeof(*tz))) == NULL ||
	    (timecnt > 0 &&
	    ((tz->times = calloc(timecnt, sizeof(*tz->times))) == NULL ||
	    (tz->offs = calloc(timecnt, sizeof(*tz->offs))) == NULL))) {
		r = BZ_ERR_ALLOC;
		goto fail;
	}
	idx = data + (size_t)timecnt * tsize;
	types = idx + timecnt;
	tz->n = timecnt;
	for (i = 0; i < timecnt; i++) {
		tz->times[i] = tsize == 8 ? be64(data + i * 8) :
		    (int32_t)be32(data + i * 4);
		if (i > 0 && tz->times[i] <= tz->times[i - 1])
			goto bad;
		if (idx[i] >= typecnt)
			goto bad;
		tz->offs[i] = (int32_t)be32(types + (size_t)idx[i] * 6);
	}
	tz->first_off = (int32_t)be32(types);
	if (tsize == 8) {
		foot = (size_t)(data - p) + need;
		if (foot < n && p[foot] == '\n') {
			for (i = foot + 1; i < n && p[i] != '\n' &&
			    i - foot - 1 < sizeof(footer) - 1; i++)
				footer[i - foot - 1] = (char)p[i];
			footer[i - foot - 1] = '\0';
			if (i < n && p[i] == '\n' && footer[0] != '\0')
				(void)parse_posix(footer, &tz->footer);
		}
	}
	*out = tz;
	return BZ_OK;
bad:
	bz_errf(err, errlen, "not a valid zone file");
	r = BZ_ERR_FORMAT;
fail:
	bz_tz_free(tz);
	return r;
}

static int
valid_name(const char *name)
{
	size_t i, len = strlen(name);

	if (len == 0 || len > TZ_NAME_MAX || name[0] == '/' ||
	    strstr(name, "..") != NULL)
		return 0;
	for (i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '/' || c == '_' ||
		    c == '+' || c == '-'))
			return 0;
	}
	return 1;
}

int
bz_tz_load(const char *name, struct bz_tz **out, char *err, size_t errlen)
{
	const char *dir = getenv("TZDIR");
	unsigned char *buf = NULL;
	char path[PATH_MAX];
	struct stat st;
	ssize_t got;
	size_t n = 0;
	int fd, r;

	*out = NULL;
	if (!valid_name(name)) {
		bz_errf(err, errlen, "invalid time zone name");
		return BZ_ERR_INVALID;
	}
	if (dir == NULL || *dir == '\0')
		dir = TZ_DEFAULT_DIR;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    sizeof(path)) {
		bz_errf(err, errlen, "time zone name too long");
		return BZ_ERR_INVALID;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		bz_errf(err, errlen, "no such time zone in %s", dir);
		return BZ_ERR_INVALID;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)BZ_TZ_FILE_MAX) {
		close(fd);
		bz_errf(err, errlen, "no such time zone in %s", dir);
		return BZ_ERR_INVALID;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return BZ_ERR_ALLOC;
	}
	while (n < (size_t)st.st_size) {
		got = read(fd, buf + n, (size_t)st.st_size - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	r = bz_tz_parse(buf, n, out, err, errlen);
	free(buf);
	return r;
}

long
bz_tz_offset(const struct bz_tz *tz, time_t t)
{
	size_t lo, hi, mid;
	int64_t t64 = (int64_t)t;

	if (tz == NULL)
		return 0;
	if (tz->n == 0 || t64 >= tz->times[tz->n - 1])
		return tz->footer.valid ? posix_offset(&tz->footer, t64) :
		    tz->n == 0 ? tz->first_off : tz->offs[tz->n - 1];
	if (t64 < tz->times[0])
		return tz->first_off;
	/* Largest i with times[i] <= t. */
	lo = 0;
	hi = tz->n - 1;
	while (lo < hi) {
		mid = lo + (hi - lo + 1) / 2;
		if (tz->times[mid] <= t64)
			lo = mid;
		else
			hi = mid - 1;
	}
	return tz->offs[lo];
}

void
bz_tz_localtime(const struct bz_tz *tz, time_t t, struct tm *out)
{
	long off = bz_tz_offset(tz, t);
	time_t lt;

	/* Keep clear of time_t overflow at the extremes. */
	if ((off > 0 && t > (time_t)(INT64_MAX / 2)) ||
	    (off < 0 && t < -(time_t)(INT64_MAX / 2)))
		off = 0;
	lt = t + off;
	memset(out, 0, sizeof(*out));
	if (gmtime_r(&lt, out) == NULL)
		memset(out, 0, sizeof(*out));
}
