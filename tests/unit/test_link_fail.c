/* test_link_fail.c: which link failures are worth another try, the
 * connect probe that names a refused port, and a real link to a closed
 * port reporting that kind (common/link_fail.c, common/ws_link.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "link_fail.h"
#include "ws_link.h"

static int
transient(enum bz_link_fail kind, int status)
{
	struct bz_link_failure f;

	memset(&f, 0, sizeof(f));
	f.kind = kind;
	f.http_status = status;
	return bz_link_fail_transient(&f);
}

static void
test_transient_kinds(void **state)
{
	/* bzproxy restarting, or a balancer without a backend yet */
	assert_true(transient(BZ_LINK_FAIL_CONNECT, 0));
	assert_true(transient(BZ_LINK_FAIL_TLS, 0));
	assert_true(transient(BZ_LINK_FAIL_LOST, 0));
	assert_true(transient(BZ_LINK_FAIL_HTTP, 502));
	assert_true(transient(BZ_LINK_FAIL_HTTP, 503));
	assert_true(transient(BZ_LINK_FAIL_HTTP, 504));
	/* waiting changes nothing */
	assert_false(transient(BZ_LINK_FAIL_CERT, 0));
	assert_false(transient(BZ_LINK_FAIL_HTTP, 401));
	assert_false(transient(BZ_LINK_FAIL_HTTP, 403));
	assert_false(transient(BZ_LINK_FAIL_HTTP, 404));
	assert_false(transient(BZ_LINK_FAIL_HTTP, 500));
	assert_false(transient(BZ_LINK_FAIL_HANDSHAKE, 0));
	assert_false(transient(BZ_LINK_FAIL_LOCAL, 0));
	assert_false(transient(BZ_LINK_FAIL_NONE, 0));
}

/* A TCP port on 127.0.0.1 that was just free: listening when keep. */
static int
port_on_loopback(int keep, int *fd_out)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	if (keep)
		assert_int_equal(listen(fd, 4), 0);
	else
		close(fd);
	*fd_out = keep ? fd : -1;
	return ntohs(sa.sin_port);
}

static void
test_link_to_closed_port(void **state)
{
	struct bz_link_failure f;
	struct bz_link *l = NULL;
	char url[64], err[256] = "", reason[BZ_LINK_REASON_LEN];
	int fd, port, i;

	port = port_on_loopback(0, &fd);
	snprintf(url, sizeof(url), "wss://127.0.0.1:%d", port);
	assert_int_equal(bz_link_start(url, "/v1/client", NULL, -1, &l, err,
	    sizeof(err)), 0);
	for (i = 0; i < 100 && bz_link_get_state(l, NULL, 0) !=
	    BZ_LINK_CLOSED; i++)
		bz_link_wait(l, 100);
	assert_int_equal(bz_link_get_state(l, reason, sizeof(reason)),
	    BZ_LINK_CLOSED);
	bz_link_get_failure(l, &f);
	assert_int_equal(f.kind, BZ_LINK_FAIL_CONNECT);
	assert_string_equal(f.detail, "connection refused");
	assert_string_equal(reason, "cannot connect to bzproxy: connection "
	    "refused");
	bz_link_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transient_kinds),
		cmocka_unit_test(test_link_to_closed_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
