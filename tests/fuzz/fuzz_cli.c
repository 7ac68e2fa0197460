/* fuzz_cli: the input is a command line, its arguments separated by NUL
 * bytes (ipmpi [options] CONFIG with --set SECTION.KEY=VALUE overrides). It
 * is parsed as main parses it, and the overrides are applied to a fixed,
 * valid config (the parsed config path is not opened). Invariants: a parse
 * or load failure leaves a one-line message; a parse success has a config
 * path (or --help/--version) and never both --restart and --overwrite; a
 * loaded config formats, reloads from its own text and formats the same,
 * and every key an override set is reported as set by --set. */
#include "ipmpi/app/cli.h"
#include "ipmpi/base/error.h"
#include "ipmpi/io/config.h"

#include "fuzz_round_trip.h"
#include "fuzz_scratch.h"

#include <stdint.h>
#include <string.h>

enum { MAX_ARGS = 64 };

static fuzz_scratch config_file;

static const char base_config[] =
    "[run]\noutput = fuzz.nc\n[training]\nepochs = 30\n[information]\nepochs = log:5\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_scratch_open_temporary(&config_file);
    fuzz_scratch_write(&config_file, base_config, sizeof base_config - 1);
    return 0;
}

/* Each well-formed override's key must report --set as its origin. */
static void check_origins(const ipm_config *cfg, const ipm_cli *c)
{
    for (int i = 0; i < c->n_overrides; i++) {
        const char *o = c->overrides[i], *dot = strchr(o, '.'), *eq = strchr(o, '=');
        if (!dot || !eq || dot > eq)
            continue;
        char section[64], name[64], err[IPM_ERRLEN] = "";
        snprintf(section, sizeof section, "%.*s", (int)(dot - o), o);
        snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
        if (strpbrk(section, " \t") || strpbrk(name, " \t"))
            continue; /* trimmed by the loader; the plain spelling is enough here */
        ipm_config_fail(cfg, section, name, err, ": probe");
        fuzz_require(strncmp(err, "--set ", 6) == 0, "an override's key is not named as --set",
                     err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[argc++] = "ipmpi";
    for (size_t at = 0; at <= size && argc < MAX_ARGS;) {
        argv[argc++] = copy + at;
        at += strlen(copy + at) + 1;
    }
    argv[argc] = NULL;
    ipm_cli c;
    char err[IPM_ERRLEN] = "";
    if (ipm_cli_parse(argc, argv, &c, err) != 0) {
        fuzz_check_message(err);
    } else {
        fuzz_require(c.config_path || c.help || c.version, "parsed without a config", NULL);
        fuzz_require(!(c.restart && c.overwrite), "--restart and --overwrite both taken", NULL);
        ipm_config cfg;
        if (ipm_config_load(&cfg, config_file.path, c.overrides, c.n_overrides, err) == 0) {
            fuzz_check_round_trip(&cfg);
            check_origins(&cfg, &c);
        } else {
            fuzz_check_message(err);
        }
        ipm_config_free(&cfg);
    }
    ipm_cli_free(&c);
    free(copy);
    return 0;
}
