#include "ipmpi/app/claim.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* path with the symbolic links of its last component followed (up to 40,
 * as the kernel does), so that a run given a link and a run given the file
 * it names take one lock; links among the folders lead to one lock file
 * anyway. A link that cannot be read, or a path too long, ends the walk. */
static void follow_last_links(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    for (int hop = 0; hop < 40; hop++) {
        char target[4096], next[4096];
        ssize_t n = readlink(out, target, sizeof target - 1);
        if (n < 0 || (size_t)n >= sizeof target - 1)
            return;
        target[n] = '\0';
        const char *slash = strrchr(out, '/');
        int folder = target[0] == '/' || !slash ? 0 : (int)(slash - out + 1);
        if (snprintf(next, sizeof next, "%.*s%s", folder, out, target) >= (int)sizeof next ||
            strlen(next) >= cap)
            return;
        memcpy(out, next, strlen(next) + 1);
    }
}

/* A lock that cannot even be created (a folder such as /proc that takes no
 * files) is the key's problem: named where the config set it. */
static int lock_for_key(ipm_lock **lock, const ipm_config *cfg, const char *name, const char *path,
                        char *err)
{
    char why[IPM_ERRLEN], target[4096];
    follow_last_links(path, target, sizeof target);
    if (ipm_lock_acquire(lock, target, why) == 0)
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
