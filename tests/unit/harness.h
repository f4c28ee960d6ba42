/*
 * harness.h: the smallest test harness that does the job, for the unit
 * tests in this directory.
 *
 *	TEST(name) { ... CHECK(cond); CHECK_EQ_I64(a, b); ... }
 *	int main(void) { RUN(name); ...; return harness_done(); }
 *
 * Each test case prints one line: "ok NAME", or "FAIL NAME: file:line
 * cond" for its first failed check, after which the case stops (a later
 * check would often dereference what the failed one guarded).  The last
 * line is "N passed, N failed"; harness_done() returns non-zero when any
 * case failed, for main to return.
 */
#ifndef LAMINA_TEST_HARNESS_H
#define LAMINA_TEST_HARNESS_H

#include <stdio.h>

static int harness_passed, harness_failed, harness_case_failed;
static const char *harness_case;

static inline void harness_fail(const char *file, int line, const char *what)
{
	harness_case_failed = 1;
	printf("FAIL %s: %s:%d %s\n", harness_case, file, line, what);
	fflush(stdout);
}

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                    \
	do {                                                         \
		harness_case = #name;                                \
		harness_case_failed = 0;                             \
		test_##name();                                       \
		if (harness_case_failed) {                           \
			harness_failed++;                            \
		} else {                                             \
			harness_passed++;                            \
			printf("ok %s\n", #name);                    \
		}                                                    \
	} while (0)

#define CHECK(cond)                                                  \
	do {                                                         \
		if (!(cond)) {                                       \
			harness_fail(__FILE__, __LINE__, #cond);     \
			return;                                      \
		}                                                    \
	} while (0)

#define CHECK_EQ_I64(a, b)                                           \
	do {                                                         \
		long long ha_ = (long long)(a), hb_ = (long long)(b);  \
		if (ha_ != hb_) {                                    \
			char hw_[256];                               \
			snprintf(hw_, sizeof(hw_), "%s == %s (%lld != %lld)", \
				 #a, #b, ha_, hb_);                  \
			harness_fail(__FILE__, __LINE__, hw_);       \
			return;                                      \
		}                                                    \
	} while (0)

static inline int harness_done(void)
{
	printf("%d passed, %d failed\n", harness_passed, harness_failed);
	return harness_failed != 0;
}

#endif
