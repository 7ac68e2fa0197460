#include "ipmpi/app/cli.h"

#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"

/* 1 when a is the flag, which it then sets. */
static int flag(const char *a, const char *name, int *field)
{
    if (strcmp(a, name) != 0)
        return 0;
    *field = 1;
    return 1;
}

int ipm_cli_parse(int argc, char **argv, ipm_cli *c, char *err)
{
    memset(c, 0, sizeof *c);
    c->overrides = calloc(argc > 0 ? (size_t)argc : 1, sizeof(char *));
    if (!c->overrides)
        return ipm_fail(err, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (flag(a, "--help", &c->help) || flag(a, "-h", &c->help) ||
            flag(a, "--version", &c->version) || flag(a, "--check", &c->check) ||
            flag(a, "--restart", &c->restart) || flag(a, "--overwrite", &c->overwrite))
            continue;
        if (!strcmp(a, "--set") && i + 1 < argc)
            c->overrides[c->n_overrides++] = argv[++i];
        else if (!strncmp(a, "--set=", 6))
            c->overrides[c->n_overrides++] = a + 6;
        else if (a[0] == '-' && a[1] != '\0')
            return ipm_fail(err, "unknown or incomplete option '%.200s' (see ipmpi --help)", a);
        else if (c->config_path)
            return ipm_fail(err, "more than one config file: '%.200s' and '%.200s'", c->config_path,
                            a);
        else
            c->config_path = a;
    }
    if (!c->help && !c->version && !c->config_path)
        return ipm_fail(err, "no config file given (see ipmpi --help)");
    if (c->restart && c->overwrite)
        return ipm_fail(err, "--restart continues a run, --overwrite replaces it: give one");
    return 0;
}

void ipm_cli_free(ipm_cli *c)
{
    free(c->overrides);
    c->overrides = NULL;
    c->n_overrides = 0;
}
