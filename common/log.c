/*
 * log.c: timestamped log lines (see lamina/log.h).
 */
#include "lamina/log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static FILE *log_stream;
static char log_program[32] = "lamina";

void lm_log_open(FILE *stream, const char *program)
{
	log_stream = stream;
	if (program)
		snprintf(log_program, sizeof(log_program), "%s", program);
}

FILE *lm_log_stream(void)
{
	return log_stream ? log_stream : stderr;
}

void lm_log(const char *fmt, ...)
{
	char line[2048];
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	va_list ap;
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
	int n = snprintf(line, sizeof(line), "%s %s[%d]: ", ts, log_program,
			 (int)getpid());
	if (n < 0)
		return;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = m < 0 ? (size_t)n
		     : (size_t)n + (size_t)m < sizeof(line) - 1
			     ? (size_t)n + (size_t)m : sizeof(line) - 2;
	line[len++] = '\n';
	FILE *f = lm_log_stream();
	fwrite(line, 1, len, f);
	fflush(f);
}
