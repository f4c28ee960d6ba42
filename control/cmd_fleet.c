/*
 * cmd_fleet.c: `lamina fleet key`, the fleet key this user's lamina proves
 * to every laminad (lamina/fleet.h): its fingerprint, or with --path its
 * file, made on first use.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "lamina/fleet.h"

static const char fleet_help[] =
	"usage: lamina fleet key [--path]\n"
	"\n"
	"Print the fingerprint of the fleet key: the secret that lamina gives\n"
	"to every laminad it starts and proves on every control connection;\n"
	"a laminad refuses load, start, stop and teardown from anyone without\n"
	"it.  The key is made on first use in $XDG_CONFIG_HOME/lamina/"
	"fleet.key\n"
	"(else ~/.config/lamina/fleet.key), mode 0600; a key file others may\n"
	"read is refused.  To start a laminad by hand for this fleet:\n"
	"laminad --fleet-key \"$(lamina fleet key --path)\".\n"
	"\n"
	"options:\n"
	"  -p, --path   print the key's file instead\n"
	"  -h, --help   this text\n";

static int fleet_key(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "path", no_argument, 0, 'p' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c, path_only = 0, created;
	char path[PATH_MAX], fp[LM_FLEET_FP_CHARS + 1];
	lm_fleet_key key;
	lm_error e;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ph", opts, NULL)) != -1) {
		switch (c) {
		case 'p': path_only = 1; break;
		case 'h': fputs(fleet_help, stdout); return 0;
		default: return cli_bad_option("fleet key", c, argv);
		}
	}
	if (optind != argc)
		return cli_errorf("fleet key", "unexpected argument '%s'",
				  argv[optind]);
	if (lm_fleet_key_path(path, sizeof(path), &e) ||
	    lm_fleet_key_ensure(path, &key, &created, &e))
		return cli_error("fleet key", &e);
	lm_fleet_fingerprint(&key, fp);
	lm_fleet_key_wipe(&key);
	if (created)
		fprintf(stderr, "lamina fleet key: made a new fleet key in "
			"%s\n", path);
	puts(path_only ? path : fp);
	return 0;
}

int cmd_fleet(int argc, char **argv)
{
	if (argc >= 2 &&
	    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(fleet_help, stdout);
		return 0;
	}
	if (argc < 2) {
		fputs(fleet_help, stderr);
		return 2;
	}
	if (strcmp(argv[1], "key"))
		return cli_errorf("fleet", "unknown subcommand '%s' (see "
				  "'lamina fleet --help')", argv[1]);
	return fleet_key(argc - 1, argv + 1);
}
