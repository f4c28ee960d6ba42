/*
 * log.h: one log line per event, for the long-running programs (laminad)
 * and anything they link.
 *
 *   2026-12-06 08:30:01 laminad[4242]: deployment d-1a2b3c4d started
 *
 * Lines go to the stream set with lm_log_open (stderr until then), are
 * written whole with one fwrite and flushed, so a log read after a crash
 * ends on a complete line.  The program name is set once at start-up.
 * Not for the CLI's user-facing messages: those are printed by the
 * command (cli.h).
 */
#ifndef LAMINA_LOG_H
#define LAMINA_LOG_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Where lines go from now on (NULL: stderr), and the program name. */
void lm_log_open(FILE *stream, const char *program);

/** The stream lines go to (stderr when none was set). */
FILE *lm_log_stream(void);

/** Write one line: time, program, pid, the formatted message. */
void lm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif
