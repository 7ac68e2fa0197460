/* cli: the command line, parsed. Options may come in any order around the
 * one config path; --set takes SECTION.KEY=VALUE as the next argument or
 * after '=' (repeatable; the overrides point into argv). --restart and
 * --overwrite exclude each other. Errors (kind unspecified: main reports
 * them as usage) name the offending argument. */
#ifndef IPMPI_APP_CLI_H
#define IPMPI_APP_CLI_H

typedef struct ipm_cli {
    const char *config_path;
    const char **overrides; /* n_overrides, malloc'd (ipm_cli_free) */
    int n_overrides;
    int check, help, version, restart, overwrite;
} ipm_cli;

int ipm_cli_parse(int argc, char **argv, ipm_cli *c, char *err);
void ipm_cli_free(ipm_cli *c);

#endif
