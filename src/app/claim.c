#include "ipmpi/app/claim.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ipmpi/base/error.h"
#include "ipmpi/io/config.h"

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

/* A fresh start over what is there would lose it. */
static int refuse_existing(const char *path, const char *what, char *err)
{
    if (!exists(path))
        return 0;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && stat(path, &st) != 0)
        return ipm_fail_as(
            err, IPM_ERR_REFUSED,
            "%s is a symbolic link that leads to no file (%s): remove it, or start afresh "
            "with --overwrite; nothing was written",
            path, strerror(errno));
    return ipm_fail_as(err, IPM_ERR_REFUSED,
                       "%s exists (%s): continue that run with --restart, or start afresh "
                       "over it with --overwrite; nothing was written",
                       path, what);
}

static int check_fresh_start(const char *output, const char *checkpoint, char *err)
{
    char prev[4200];
    snprintf(prev, sizeof prev, "%s.prev", checkpoint);
    return refuse_existing(output, "an earlier run's output", err) ||
                   refuse_existing(checkpoint, "an earlier run's checkpoint", err) ||
                   refuse_existing(prev, "an earlier run's previous checkpoint", err)
               ? -1
               : 0;
}

/* A lock that cannot even be created (a folder such as /proc that takes no
 * files) is the key's problem: named where the config set it. */
static int lock_for_key(ipm_lock **lock, const ipm_config *cfg, const char *name, const char *path,
                        char *err)
{
    char why[IPM_ERRLEN];
    if (ipm_lock_acquire(lock, path, why) == 0)
        return 0;
    if (ipm_error_kind(why) == IPM_ERR_REFUSED)
        return ipm_fail_wrap(err, why, "%s", why);
    ipm_config_fail(cfg, "run", name, err, " = %s: %s", path, why);
    ipm_error_default_kind(err, IPM_ERR_INPUT);
    return -1;
}

/* A run that would write into an existing output through one of several
 * names (hard links) could be writing into another run's file, which that
 * run locked under its own name: refused, so that no run is truncated or
 * appended to by a stranger. */
static int refuse_other_names(const char *output, char *err)
{
    struct stat st;
    if (stat(output, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink <= 1)
        return 0;
    return ipm_fail_as(err, IPM_ERR_REFUSED,
                       "%s has %ju names (hard links), so another run may be writing it under "
                       "another name: remove the other names, or choose another output; nothing "
                       "was written",
                       output, (uintmax_t)st.st_nlink);
}

int ipm_claim_files(ipm_claim *c, const ipm_config *cfg, const char *checkpoint, int restart,
                    int overwrite, char *err)
{
    memset(c, 0, sizeof *c);
    const char *output = cfg->output;
    if (lock_for_key(&c->output, cfg, "output", output, err) ||
        lock_for_key(&c->checkpoint, cfg, "checkpoint", checkpoint, err) ||
        (!restart && !overwrite && check_fresh_start(output, checkpoint, err)) ||
        refuse_other_names(output, err)) {
        ipm_claim_release(c);
        return -1;
    }
    return 0;
}

void ipm_claim_release(ipm_claim *c)
{
    ipm_lock_release(c->checkpoint);
    ipm_lock_release(c->output);
    memset(c, 0, sizeof *c);
}
