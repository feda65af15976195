/*
 * bzload: connect N simulated agents to a real bzproxy from one process
 * and measure what they cost it (bench/scale.sh runs it; README "Scale").
 *
 * The agents come from the output of `bzproxy agent add --from` ("NAME
 * TOKEN" lines; a NAME alone for one enrolled already); each one's key is
 * derived from --seed and its name. Phases: connect all (at most
 * --inflight handshakes at once), then an idle window of --window s (we
 * send nothing: bzproxy's idle CPU), then as long sampling ping round
 * trips every --ping-ms, then the report (stdout, and --json FILE); with --hold the links stay up,
 * answering keepalives, until SIGINT/SIGTERM or stdin closes, and the
 * report is written again with what happened meanwhile (drops, ping RTT,
 * bzproxy's peak RSS and CPU).
 *
 * Figures of bzproxy (--proxy-pid) come from /proc/PID: RSS (VmRSS) before
 * and after connecting, and CPU over the idle window. The latency sampled
 * is a websocket ping's round trip on an agent link: bzproxy's loop
 * answers it, so it is what a small request waits there.
 */
#include "bzload.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <jansson.h>
#include <sodium.h>

#include "backoff.h"
#include "fdlimit.h"
#include "util.h"
#include "wss_url.h"

#define TICK_MS 2
#define SLOW_MS 500
#define SAMPLE_MAX 1000000
#define FD_SPARE 64

struct proc_pt {
	long rss_kib;
	double cpu_s;
	int64_t at_ms;
};

struct run {
	struct load L;
	uv_timer_t tick, slow, ping, window;
	uv_signal_t sig_int, sig_term;
	uv_poll_t in;
	int in_init, in_polled;
	struct proc_pt base, connected, idle0, idle1, hold0, hold1;
	long hold_rss_max;
	size_t hold_drops0;
	json_t *report;
};

/* ---- small helpers shared with bzload_link.c ---- */

int64_t
bzl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
bzl_count(struct bzl_reasons *r, const char *why)
{
	int i;

	r->total++;
	for (i = 0; i < BZL_REASONS && r->text[i][0] != '\0'; i++)
		if (strcmp(r->text[i], why) == 0) {
			r->count[i]++;
			return;
		}
	if (i == BZL_REASONS) {
		r->other++;
		return;
	}
	snprintf(r->text[i], BZL_REASON_LEN, "%s", why);
	r->count[i] = 1;
}

int
bzl_sample(struct bzl_samples *s, uint32_t v)
{
	uint32_t *nv;

	if (s->n == s->cap) {
		if (s->cap >= SAMPLE_MAX)
			return -1;
		s->cap = s->cap ? s->cap * 2 : 1024;
		if ((nv = realloc(s->v, s->cap * sizeof(*nv))) == NULL)
			return -1;
		s->v = nv;
	}
	s->v[s->n++] = v;
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0-100), or -1 without samples. */
static double
pct(struct bzl_samples *s, double p)
{
	size_t i;

	if (s->n == 0)
		return -1;
	qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
	i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
	return s->v[i];
}

/* ---- bzproxy's figures from /proc ---- */

static void
proc_read(long pid, struct proc_pt *p)
{
	char path[64], buf[2048], *q;
	unsigned long ut, st;
	FILE *f;

	p->rss_kib = -1;
	p->cpu_s = -1;
	p->at_ms = bz_now_ms();
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(buf, sizeof(buf), f) != NULL)
			if (sscanf(buf, "VmRSS: %ld", &p->rss_kib) == 1)
				break;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) != NULL) {
		/* after the command name's closing paren: state is field 3,
		 * utime 14, stime 15 */
		if (fgets(buf, sizeof(buf), f) != NULL &&
		    (q = strrchr(buf, ')')) != NULL &&
		    sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
		    "%*u %lu %lu", &ut, &st) == 2)
			p->cpu_s = (double)(ut + st) /
			    (double)sysconf(_SC_CLK_TCK);
		fclose(f);
	}
}

static double
cpu_pct(const struct proc_pt *a, const struct proc_pt *b)
{
	if (a->cpu_s < 0 || b->cpu_s < 0 || b->at_ms <= a->at_ms)
		return -1;
	return 100.0 * (b->cpu_s - a->cpu_s) /
	    ((double)(b->at_ms - a->at_ms) / 1000.0);
}

/* ---- the report ---- */

static json_t *
reasons_json(const struct bzl_reasons *r)
{
	json_t *o = json_object();
	int i;

	for (i = 0; i < BZL_REASONS && r->text[i][0] != '\0'; i++)
		json_object_set_new(o, r->text[i], json_integer(r->count[i]));
	if (r->other)
		json_object_set_new(o, "(other reasons)",
		    json_integer(r->other));
	return o;
}

static void
print_reasons(const char *what, const struct bzl_reasons *r)
{
	int i;

	for (i = 0; i < BZL_REASONS && r->text[i][0] != '\0'; i++)
		printf("  %s: %u x %s\n", what, r->count[i], r->text[i]);
}

static json_t *
num(double v)
{
	return v < 0 ? json_null() : json_real(v);
}

/* The connect and idle figures, printed and kept in r->report. */
static void
report_idle(struct run *r)
{
	struct load *L = &r->L;
	double t_all = (double)(L->t_all_ms - L->t0_ms) / 1000.0;
	double per = -1, rss_delta = -1;
	double hs50 = pct(&L->hs_ms, 50), hs99 = pct(&L->hs_ms, 99);
	double p50 = pct(&L->rtt, 50), p99 = pct(&L->rtt, 99);
	double idle = cpu_pct(&r->idle0, &r->idle1);
	struct rusage ru;
	double self_cpu;

	/* our own cost: if we were the bottleneck, the figures are ours */
	getrusage(RUSAGE_SELF, &ru);
	self_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;

	if (r->base.rss_kib >= 0 && r->connected.rss_kib >= 0) {
		rss_delta = (double)(r->connected.rss_kib - r->base.rss_kib);
		if (L->ready > 0)
			per = rss_delta / (double)L->ready;
	}
	printf("bzload: %zu agents: %zu connected, %zu failed, %u refusals "
	    "retried, %zu dropped\n", L->n, L->ready, L->failed,
	    L->refusals.total, L->dropped);
	print_reasons("failed", &L->fails);
	print_reasons("refused (retried)", &L->refusals);
	print_reasons("dropped", &L->drops);
	printf("  time to connect all: %.2f s (%.0f agents/s); handshake p50 "
	    "%.0f ms, p99 %.0f ms\n", t_all, t_all > 0 ?
	    (double)L->ready / t_all : 0, hs50, hs99);
	if (L->o.proxy_pid > 0)
		printf("  bzproxy RSS: %ld KiB before, %ld KiB connected: "
		    "%.1f KiB per agent; idle CPU %.2f%% of a core over %d s\n",
		    r->base.rss_kib, r->connected.rss_kib, per, idle,
		    L->o.window_s);
	printf("  ping RTT through bzproxy's loop: p50 %.0f us, p99 %.0f us "
	    "(%zu samples)\n", p50, p99, L->rtt.n);
	printf("  bzload itself: %.1f CPU s, %ld KiB RSS peak\n", self_cpu,
	    ru.ru_maxrss);
	fflush(stdout);
	json_decref(r->report);
	r->report = json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, "
	    "s:f, s:o, s:o, s:o, s:{s:o, s:o, s:o, s:o, s:o}, "
	    "s:{s:o, s:o, s:I}}",
	    "agents", (json_int_t)L->n, "connected", (json_int_t)L->ready,
	    "failed", (json_int_t)L->failed,
	    "refusals", (json_int_t)L->refusals.total,
	    "dropped", (json_int_t)L->dropped,
	    "failure_reasons", reasons_json(&L->fails),
	    "refusal_reasons", reasons_json(&L->refusals),
	    "drop_reasons", reasons_json(&L->drops),
	    "connect_s", t_all,
	    "connect_rate", num(t_all > 0 ? (double)L->ready / t_all : -1),
	    "handshake_ms_p50", num(hs50), "handshake_ms_p99", num(hs99),
	    "proxy", "rss_base_kib", num((double)r->base.rss_kib),
	    "rss_connected_kib", num((double)r->connected.rss_kib),
	    "rss_per_agent_kib", num(per),
	    "idle_cpu_pct", num(idle), "idle_window_s",
	    json_integer(L->o.window_s),
	    "ping_rtt_us", "p50", num(p50), "p99", num(p99), "samples",
	    (json_int_t)L->rtt.n);
	if (r->report != NULL)
		json_object_set_new(r->report, "bzload", json_pack(
		    "{s:f, s:I}", "cpu_s", self_cpu, "rss_max_kib",
		    (json_int_t)ru.ru_maxrss));
}

static void
report_hold(struct run *r)
{
	struct load *L = &r->L;
	double p50 = pct(&L->rtt, 50), p99 = pct(&L->rtt, 99);
	double cpu = cpu_pct(&r->hold0, &r->hold1);
	double secs = (double)(r->hold1.at_ms - r->hold0.at_ms) / 1000.0;

	printf("bzload: held %.1f s: %zu dropped meanwhile, %zu still "
	    "connected; bzproxy peak RSS %ld KiB, CPU %.1f%%; ping RTT p50 "
	    "%.0f us, p99 %.0f us (%zu samples)\n", secs,
	    L->dropped - r->hold_drops0, L->ready, r->hold_rss_max, cpu, p50,
	    p99, L->rtt.n);
	print_reasons("dropped", &L->drops);
	fflush(stdout);
	if (r->report != NULL)
		json_object_set_new(r->report, "hold", json_pack(
		    "{s:f, s:I, s:o, s:I, s:o, s:o, s:{s:o, s:o, s:I}}",
		    "seconds", secs,
		    "dropped", (json_int_t)(L->dropped - r->hold_drops0),
		    "drop_reasons", reasons_json(&L->drops),
		    "connected", (json_int_t)L->ready,
		    "proxy_rss_max_kib", num((double)r->hold_rss_max),
		    "proxy_cpu_pct", num(cpu), "ping_rtt_us", "p50", num(p50),
		    "p99", num(p99), "samples", (json_int_t)L->rtt.n));
}

static void
write_json(struct run *r)
{
	char tmp[4096];

	if (r->L.o.json_file == NULL || r->report == NULL)
		return;
	/* whole or not at all: a script waits for the file */
	snprintf(tmp, sizeof(tmp), "%s.tmp", r->L.o.json_file);
	if (json_dump_file(r->report, tmp, JSON_INDENT(1)) != 0 ||
	    rename(tmp, r->L.o.json_file) != 0)
		fprintf(stderr, "bzload: cannot write %s\n", r->L.o.json_file);
}

/* ---- phases ---- */

static void
stop(struct run *r)
{
	struct load *L = &r->L;

	if (L->phase == PH_STOP)
		return;
	if (L->phase == PH_HOLD) {
		proc_read(L->o.proxy_pid, &r->hold1);
		report_hold(r);
		write_json(r);
	}
	L->phase = PH_STOP;
	uv_timer_stop(&r->tick);
	uv_timer_stop(&r->slow);
	uv_timer_stop(&r->ping);
	uv_timer_stop(&r->window);
	uv_signal_stop(&r->sig_int);
	uv_signal_stop(&r->sig_term);
	if (r->in_polled)
		uv_poll_stop(&r->in);
	/* every link closes with the context; the loop then runs dry */
	bzl_ctx_destroy(L);
}

static void
on_window(uv_timer_t *t)
{
	struct run *r = t->data;
	struct load *L = &r->L;

	if (L->phase == PH_IDLE) {
		/* idle measured; now the ping samples, as long */
		proc_read(L->o.proxy_pid, &r->idle1);
		L->phase = PH_LAT;
		L->rtt.n = 0;
		uv_timer_start(&r->window, on_window,
		    (uint64_t)L->o.window_s * 1000, 0);
		return;
	}
	report_idle(r);
	write_json(r);
	if (!L->o.hold) {
		stop(r);
		return;
	}
	L->phase = PH_HOLD;
	L->rtt.n = 0; /* the hold's own samples */
	r->hold_drops0 = L->dropped;
	proc_read(L->o.proxy_pid, &r->hold0);
	r->hold_rss_max = r->hold0.rss_kib;
	fprintf(stderr, "bzload: holding the links; SIGTERM or closing stdin "
	    "ends\n");
}

/* Everyone connected or given up (or the time is up): measure idle. */
static void
connected_all(struct run *r, int64_t now)
{
	struct load *L = &r->L;

	L->t_all_ms = now;
	L->phase = PH_IDLE;
	proc_read(L->o.proxy_pid, &r->connected);
	r->idle0 = r->connected;
	L->rtt.n = 0;
	uv_timer_start(&r->window, on_window, (uint64_t)L->o.window_s * 1000,
	    0);
}

static void
on_tick(uv_timer_t *t)
{
	struct run *r = t->data;
	struct load *L = &r->L;
	int64_t now = bz_now_ms();

	if (L->phase != PH_CONNECT)
		return;
	bzl_launch(L, now);
	if (L->ready + L->failed + L->dropped == L->n) {
		connected_all(r, now);
		return;
	}
	if (now - L->t0_ms > (int64_t)L->o.connect_s * 1000) {
		/* the rest did not make it: failures, by the deadline */
		bzl_give_up(L, "not connected within --connect-timeout");
		connected_all(r, now);
	}
}

static void
on_slow(uv_timer_t *t)
{
	struct run *r = t->data;
	struct proc_pt p;

	if (r->L.phase == PH_CONNECT)
		bzl_reap_slow(&r->L, bz_now_ms());
	if (r->L.phase == PH_HOLD && r->L.o.proxy_pid > 0) {
		proc_read(r->L.o.proxy_pid, &p);
		if (p.rss_kib > r->hold_rss_max)
			r->hold_rss_max = p.rss_kib;
	}
}

static void
on_ping(uv_timer_t *t)
{
	struct run *r = t->data;

	if (r->L.phase == PH_LAT || r->L.phase == PH_HOLD)
		bzl_ping_one(&r->L);
}

static void
on_signal(uv_signal_t *h, int sig)
{
	fprintf(stderr, "bzload: signal %d: stopping\n", sig);
	stop(h->data);
}

static void
on_stdin(uv_poll_t *h, int status, int events)
{
	char buf[256];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	(void)events;
	if (status < 0 || n == 0 || (n < 0 && errno != EAGAIN &&
	    errno != EINTR)) {
		uv_poll_stop(h);
		((struct run *)h->data)->in_polled = 0;
		fprintf(stderr, "bzload: stdin closed: stopping\n");
		stop(h->data);
	}
}

/* ---- start ---- */

/* As many descriptors as the hard limit allows: one per link. */
static int
raise_nofile(size_t need)
{
	struct bz_nofile n;
	int r;

	if ((r = bz_raise_nofile(ULONG_MAX, &n)) != 0) {
		fprintf(stderr, "bzload: cannot %s the open files limit: %s\n",
		    r < 0 ? "read" : "raise", strerror(errno));
		return -1;
	}
	if (n.now < need + FD_SPARE) {
		fprintf(stderr, "bzload: %zu links need %zu descriptors; the "
		    "hard limit is %lu (ulimit -Hn)\n", need, need + FD_SPARE,
		    n.now);
		return -1;
	}
	return (int)(n.now > 1048576 ? 1048576 : n.now);
}

/* "NAME [TOKEN]" lines (agent add --from's output) into L->sims. */
static int
read_agents(struct load *L)
{
	FILE *f = fopen(L->o.agents_file, "r");
	char line[1024], name[128], token[300];
	size_t cap = 0;
	struct sim *ns;
	int k;

	if (f == NULL) {
		fprintf(stderr, "bzload: %s: %s\n", L->o.agents_file,
		    strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL &&
	    (L->o.count == 0 || L->n < L->o.count)) {
		if ((k = sscanf(line, "%127s %299s", name, token)) < 1 ||
		    name[0] == '#')
			continue;
		if (L->n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((ns = realloc(L->sims, cap * sizeof(*ns))) ==
			    NULL)
				break;
			L->sims = ns;
		}
		memset(&L->sims[L->n], 0, sizeof(*L->sims));
		L->sims[L->n].name = strdup(name);
		L->sims[L->n].token = k == 2 ? strdup(token) : NULL;
		L->n++;
	}
	fclose(f);
	if (L->n == 0 || (L->o.count != 0 && L->n < L->o.count)) {
		fprintf(stderr, "bzload: %s holds %zu agents%s\n",
		    L->o.agents_file, L->n, L->o.count ? ", fewer than asked"
		    : "");
		return -1;
	}
	return (L->rq = calloc(L->n, sizeof(*L->rq))) != NULL ? 0 : -1;
}

static const char usage[] =
"usage: bzload --url wss://HOST[:PORT] --ca CA.pem --proxy-key B64URL\n"
"              --agents FILE [--count N] [--seed TEXT] [--inflight 200]\n"
"              [--retries 50] [--handshake-timeout 30] [--connect-timeout 120]\n"
"              [--window 10] [--ping-ms 20] [--proxy-pid PID] [--json FILE]\n"
"              [--hold]\n"
"FILE: \"NAME [TOKEN]\" per line, as `bzproxy agent add --from` prints.\n";

/* The proxy's host and port, read as bzagent's and bzsshd's links do. */
static int
parse_url(const char *url, struct bzl_opts *o)
{
	char err[256] = "out of memory", *host;

	if (bz_wss_url_parse(url, &host, &o->port, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzload: %s\n", err);
		return -1;
	}
	if (strlen(host) >= sizeof(o->host)) { /* the parser allows 255 */
		free(host);
		return -1;
	}
	memcpy(o->host, host, strlen(host) + 1);
	free(host);
	return 0;
}

static int
parse_opts(int argc, char **argv, struct bzl_opts *o)
{
	static const struct option lo[] = {
		{ "url", 1, NULL, 'u' }, { "ca", 1, NULL, 'c' },
		{ "proxy-key", 1, NULL, 'k' }, { "agents", 1, NULL, 'a' },
		{ "count", 1, NULL, 'n' }, { "seed", 1, NULL, 's' },
		{ "inflight", 1, NULL, 'i' }, { "retries", 1, NULL, 'r' },
		{ "handshake-timeout", 1, NULL, 'H' },
		{ "connect-timeout", 1, NULL, 'C' }, { "window", 1, NULL, 'w' },
		{ "ping-ms", 1, NULL, 'p' }, { "proxy-pid", 1, NULL, 'P' },
		{ "json", 1, NULL, 'j' }, { "hold", 0, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *seed = "bzload", *key = NULL, *url = NULL;
	uint8_t *pk = NULL;
	size_t pkl = 0;
	int c, v, bad = 0;

	o->path = "/v1/agent";
	o->inflight = 200;
	o->max_retries = 50;
	o->handshake_s = 30;
	o->connect_s = 120;
	o->window_s = 10;
	o->ping_ms = 20;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 'c': o->ca_file = optarg; break;
		case 'k': key = optarg; break;
		case 'a': o->agents_file = optarg; break;
		case 's': seed = optarg; break;
		case 'j': o->json_file = optarg; break;
		case 'h': o->hold = 1; break;
		case 'n': bad |= bz_parse_int_range(optarg, 1, 1000000, &v);
			o->count = (size_t)v; break;
		case 'i': bad |= bz_parse_int_range(optarg, 1, 100000, &v);
			o->inflight = (unsigned)v; break;
		case 'r': bad |= bz_parse_int_range(optarg, 0, 1000, &v);
			o->max_retries = (unsigned)v; break;
		case 'H': bad |= bz_parse_int_range(optarg, 1, 3600,
			    &o->handshake_s); break;
		case 'C': bad |= bz_parse_int_range(optarg, 1, 86400,
			    &o->connect_s); break;
		case 'w': bad |= bz_parse_int_range(optarg, 1, 3600,
			    &o->window_s); break;
		case 'p': bad |= bz_parse_int_range(optarg, 1, 60000,
			    &o->ping_ms); break;
		case 'P': bad |= bz_parse_int_range(optarg, 1, 1 << 30, &v);
			o->proxy_pid = v; break;
		default: bad = 1; break;
		}
	}
	if (bad || optind != argc || url == NULL || o->ca_file == NULL ||
	    key == NULL || o->agents_file == NULL || parse_url(url, o) != 0 ||
	    bz_b64url_decode(key, strlen(key), 64, &pk, &pkl) != 0 ||
	    pkl != 32) {
		free(pk);
		fputs(usage, stderr);
		return -1;
	}
	memcpy(o->proxy_pk, pk, 32);
	free(pk);
	crypto_generichash(o->seed, sizeof(o->seed), (const uint8_t *)seed,
	    strlen(seed), NULL, 0);
	return 0;
}

int
main(int argc, char **argv)
{
	static struct run run;
	struct run *r = &run;
	struct load *L = &r->L;
	int fds, rc = 1;
	size_t i;

	if (sodium_init() < 0 || parse_opts(argc, argv, &L->o) != 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (read_agents(L) != 0 || (fds = raise_nofile(L->n)) < 0)
		return 1;
	if (uv_loop_init(&L->loop) != 0 || bzl_ctx_create(L, fds) != 0) {
		fprintf(stderr, "bzload: cannot create the lws context on "
		    "libuv (libwebsockets-evlib-uv installed? CA %s)\n",
		    L->o.ca_file);
		return 1;
	}
	uv_timer_init(&L->loop, &r->tick);
	uv_timer_init(&L->loop, &r->slow);
	uv_timer_init(&L->loop, &r->ping);
	uv_timer_init(&L->loop, &r->window);
	uv_signal_init(&L->loop, &r->sig_int);
	uv_signal_init(&L->loop, &r->sig_term);
	r->tick.data = r->slow.data = r->ping.data = r->window.data = r;
	r->sig_int.data = r->sig_term.data = r->in.data = r;
	uv_signal_start(&r->sig_int, on_signal, SIGINT);
	uv_signal_start(&r->sig_term, on_signal, SIGTERM);
	/* stdin closing ends a hold (a pipe or a tty; not /dev/null) */
	if (L->o.hold && uv_poll_init(&L->loop, &r->in, STDIN_FILENO) == 0) {
		r->in_init = 1;
		r->in_polled = uv_poll_start(&r->in, UV_READABLE,
		    on_stdin) == 0;
	}
	proc_read(L->o.proxy_pid, &r->base);
	L->phase = PH_CONNECT;
	L->t0_ms = bz_now_ms();
	uv_timer_start(&r->tick, on_tick, 0, TICK_MS);
	uv_timer_start(&r->slow, on_slow, SLOW_MS, SLOW_MS);
	uv_timer_start(&r->ping, on_ping, (uint64_t)L->o.ping_ms,
	    (uint64_t)L->o.ping_ms);
	uv_run(&L->loop, UV_RUN_DEFAULT);
	bzl_ctx_destroy(L); /* lws's handles are closed: now it frees */
	/* ours next, then the loop */
	uv_close((uv_handle_t *)&r->tick, NULL);
	uv_close((uv_handle_t *)&r->slow, NULL);
	uv_close((uv_handle_t *)&r->ping, NULL);
	uv_close((uv_handle_t *)&r->window, NULL);
	uv_close((uv_handle_t *)&r->sig_int, NULL);
	uv_close((uv_handle_t *)&r->sig_term, NULL);
	if (r->in_init)
		uv_close((uv_handle_t *)&r->in, NULL);
	uv_run(&L->loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&L->loop);
	rc = L->failed == 0 ? 0 : 1;
	for (i = 0; i < L->n; i++) {
		free(L->sims[i].name);
		if (L->sims[i].token != NULL)
			sodium_memzero(L->sims[i].token,
			    strlen(L->sims[i].token));
		free(L->sims[i].token);
	}
	free(L->sims);
	free(L->rq);
	free(L->hs_ms.v);
	free(L->rtt.v);
	json_decref(r->report);
	return rc;
}
