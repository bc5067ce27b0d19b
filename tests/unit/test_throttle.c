/* Failed-login throttling (auth/auth_throttle.c): delays doubling per
 * failure from one address, capped; blocking after max_per_minute; the
 * window; bounded memory with eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "common/common.h"

static void
test_delays(void **state)
{
	struct auth_throttle *t = auth_throttle_new(2, 100);
	time_t now = 1000000;

	(void)state;
	assert_false(auth_throttle_blocked(t, "192.0.2.1", now));
	assert_int_equal(auth_throttle_failure(t, "192.0.2.1", now), 2000);
	assert_int_equal(auth_throttle_failure(t, "192.0.2.1", now), 4000);
	assert_int_equal(auth_throttle_failure(t, "192.0.2.1", now + 1), 8000);
	/* another address starts from the base delay */
	assert_int_equal(auth_throttle_failure(t, "192.0.2.2", now), 2000);
	assert_int_equal(auth_throttle_failure(t, "192.0.2.1", now + 2),
			 15000);
	assert_int_equal(auth_throttle_failure(t, "192.0.2.1", now + 3),
			 15000);
	for (int i = 0; i < 50; i++)
		assert_int_equal(auth_throttle_failure(t, "192.0.2.1", now + 3),
				 15000);
	/* a minute after the window started, it starts again */
	assert_int_equal(auth_throttle_failure(t, "192.0.2.1", now + 60),
			 2000);
	/* success forgets the address */
	assert_int_equal(auth_throttle_failure(t, "192.0.2.1", now + 61),
			 4000);
	auth_throttle_success(t, "192.0.2.1");
	assert_int_equal(auth_throttle_failure(t, "192.0.2.1", now + 61),
			 2000);
	auth_throttle_free(&t);
	assert_null(t);
}

static void
test_zero_delay(void **state)
{
	struct auth_throttle *t = auth_throttle_new(0, 3);

	(void)state;
	assert_int_equal(auth_throttle_failure(t, "::1", 5), 0);
	assert_int_equal(auth_throttle_failure(t, "::1", 5), 0);
	assert_false(auth_throttle_blocked(t, "::1", 5));
	assert_int_equal(auth_throttle_failure(t, "::1", 5), 0);
	assert_true(auth_throttle_blocked(t, "::1", 5));
	auth_throttle_free(&t);
}

static void
test_blocked(void **state)
{
	struct auth_throttle *t = auth_throttle_new(1, 5);
	time_t now = 5000;

	(void)state;
	for (int i = 0; i < 4; i++) {
		(void)auth_throttle_failure(t, "198.51.100.7", now);
		assert_false(auth_throttle_blocked(t, "198.51.100.7", now));
	}
	(void)auth_throttle_failure(t, "198.51.100.7", now + 10);
	assert_true(auth_throttle_blocked(t, "198.51.100.7", now + 10));
	assert_true(auth_throttle_blocked(t, "198.51.100.7", now + 59));
	assert_false(auth_throttle_blocked(t, "198.51.100.8", now + 59));
	/* the minute is over */
	assert_false(auth_throttle_blocked(t, "198.51.100.7", now + 60));
	/* a clock step backwards does not block forever */
	for (int i = 0; i < 5; i++)
		(void)auth_throttle_failure(t, "198.51.100.9", now);
	assert_true(auth_throttle_blocked(t, "198.51.100.9", now));
	assert_false(auth_throttle_blocked(t, "198.51.100.9", now - 100));
	auth_throttle_free(&t);
}

static void
test_eviction(void **state)
{
	struct auth_throttle *t = auth_throttle_new(1, 3);
	char ip[64];

	(void)state;
	/* the oldest address is forgotten first when the table is full */
	for (int i = 0; i < 3; i++)
		(void)auth_throttle_failure(t, "203.0.113.1", 100);
	assert_true(auth_throttle_blocked(t, "203.0.113.1", 101));
	for (int i = 0; i < 20000; i++) {
		assert_int_equal(rb_snprintf(ip, sizeof(ip), "10.%d.%d.%d",
					     (i >> 16) & 255, (i >> 8) & 255,
					     i & 255), 0);
		assert_int_equal(auth_throttle_failure(t, ip, 102 + i / 1000),
				 1000);
	}
	assert_false(auth_throttle_blocked(t, "203.0.113.1", 121));
	/* recent ones are still known */
	assert_int_equal(auth_throttle_failure(t, "10.0.78.31", 121), 2000);
	/* absurdly long keys are cut, not overflowed */
	{
		char longip[200];

		for (size_t i = 0; i < sizeof(longip) - 1; i++)
			longip[i] = 'a';
		longip[sizeof(longip) - 1] = '\0';
		assert_int_equal(auth_throttle_failure(t, longip, 121), 1000);
		assert_int_equal(auth_throttle_failure(t, longip, 121), 2000);
	}
	auth_throttle_free(&t);
}

/* Rewriting one address, or moving inside one's own /64, must not give
 * a fresh budget of guesses. */
static void
test_address_variants(void **state)
{
	struct auth_throttle *t = auth_throttle_new(1, 3);
	time_t now = 2000000;

	(void)state;
	assert_int_equal(auth_throttle_failure(t, "2001:db8:1:2::1", now),
			 1000);
	assert_int_equal(auth_throttle_failure(t, "2001:db8:1:2::2", now),
			 2000);
	assert_int_equal(auth_throttle_failure(t,
			 "2001:0db8:0001:0002:ffff:1:2:3", now), 4000);
	assert_true(auth_throttle_blocked(t, "2001:db8:1:2:dead:beef::9",
					  now));
	/* another /64 is another site */
	assert_false(auth_throttle_blocked(t, "2001:db8:1:3::1", now));

	/* an IPv4-mapped address is the IPv4 address */
	assert_int_equal(auth_throttle_failure(t, "192.0.2.7", now), 1000);
	assert_int_equal(auth_throttle_failure(t, "::ffff:192.0.2.7", now),
			 2000);
	assert_int_equal(auth_throttle_failure(t, "::FFFF:c000:0207", now),
			 4000);
	assert_true(auth_throttle_blocked(t, "192.0.2.7", now));
	auth_throttle_success(t, "::ffff:192.0.2.7");
	assert_false(auth_throttle_blocked(t, "192.0.2.7", now));

	/* not an address: the string itself */
	assert_int_equal(auth_throttle_failure(t, "local", now), 1000);
	assert_false(auth_throttle_blocked(t, "locals", now));
	auth_throttle_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delays),
		cmocka_unit_test(test_zero_delay),
		cmocka_unit_test(test_blocked),
		cmocka_unit_test(test_eviction),
		cmocka_unit_test(test_address_variants),
	};

	return cmocka_run_group_tests_name("throttle", tests, NULL, NULL);
}
