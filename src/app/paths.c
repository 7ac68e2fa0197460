/* realpath is XSI. */
#define _XOPEN_SOURCE 700

#include "ipmpi/app/paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/vfs.h>
#endif
#include <unistd.h>

#include "ipmpi/base/error.h"

/* A path the run touches, with the key that names it. */
typedef struct role {
    const char *section, *name; /* the key (NULL: the config file itself) */
    char path[IPM_PATH_MAX + 8];
    const char *what; /* what the file is to the run */
    int written;
} role;

static int key_fail(const ipm_config *cfg, const role *r, char *err, const char *why)
{
    if (!r->section)
        return ipm_fail_as(err, IPM_ERR_INPUT, "%s: %s", r->path, why);
    ipm_config_fail(cfg, r->section, r->name, err, " = %s: %s", r->path, why);
    ipm_error_default_kind(err, IPM_ERR_INPUT);
    return -1;
}

/* The folder of path ("." when it has none). */
static void folder_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else
        snprintf(dir, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

/* Folders of the kernel's pseudo file systems, where no regular file can
 * be created (Linux's statfs magic numbers: proc, sysfs, cgroup, cgroup2,
 * debugfs, securityfs, devpts). */
static int is_kernel_folder(const char *dir)
{
#ifdef __linux__
    static const unsigned long kernel_fs[] = {0x9fa0,     0x62656572, 0x27e0eb, 0x63677270,
                                              0x64626720, 0x73636673, 0x1cd1};
    struct statfs fs;
    if (statfs(dir, &fs) != 0)
        return 0;
    for (size_t i = 0; i < sizeof kernel_fs / sizeof *kernel_fs; i++)
        if ((unsigned long)fs.f_type == kernel_fs[i])
            return 1;
#else
    (void)dir;
#endif
    return 0;
}

static int check_writable(const ipm_config *cfg, const role *r, char *err)
{
    char why[IPM_PATH_MAX + 200], dir[IPM_PATH_MAX];
    struct stat st;
    if (stat(r->path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return key_fail(cfg, r, err, "is a folder; name a file in it");
        if (!S_ISREG(st.st_mode))
            return key_fail(cfg, r, err, "is not a regular file (a device, pipe or socket)");
    }
    folder_of(r->path, dir, sizeof dir);
    if (stat(dir, &st) != 0) {
        snprintf(why, sizeof why, "folder %s: %s", dir, strerror(errno));
        return key_fail(cfg, r, err, why);
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, sizeof why, "%s is not a folder", dir);
        return key_fail(cfg, r, err, why);
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(why, sizeof why, "cannot write in folder %s: %s", dir, strerror(errno));
        return key_fail(cfg, r, err, why);
    }
    if (is_kernel_folder(dir)) { /* access() lets root "write" there; nothing can be created */
        snprintf(why, sizeof why,
                 "folder %s is the kernel's (proc, sys...): no file can be made in it", dir);
        return key_fail(cfg, r, err, why);
    }
    return 0;
}

/* The folder's real path and the name: one spelling per file. */
static void canonical(const char *path, char *out, size_t cap)
{
    char dir[IPM_PATH_MAX], real[PATH_MAX];
    folder_of(path, dir, sizeof dir);
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (realpath(dir, real))
        snprintf(out, cap, "%s/%s", real, name);
    else
        snprintf(out, cap, "%s", path);
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char ca[IPM_PATH_MAX + PATH_MAX], cb[IPM_PATH_MAX + PATH_MAX];
    canonical(a, ca, sizeof ca);
    canonical(b, cb, sizeof cb);
    return strcmp(ca, cb) == 0;
}

static void add(role *r, int *n, const char *section, const char *name, const char *path,
                const char *suffix, const char *what, int written)
{
    if (!path[0])
        return;
    r[*n] = (role){section, name, "", what, written};
    snprintf(r[*n].path, sizeof r[*n].path, "%s%s", path, suffix);
    (*n)++;
}

/* Every file of the run, the written ones first. */
static int collect(const ipm_config *cfg, const char *checkpoint, role *r)
{
    int n = 0;
    add(r, &n, "run", "output", cfg->output, "", "the run's output", 1);
    add(r, &n, "run", "checkpoint", checkpoint, "", "the checkpoint", 1);
    add(r, &n, "run", "checkpoint", checkpoint, ".prev", "the previous checkpoint", 1);
    add(r, &n, "run", "checkpoint", checkpoint, ".tmp", "the checkpoint being written", 1);
    add(r, &n, "run", "output", cfg->output, ".lock", "the output's lock file", 1);
    add(r, &n, "run", "checkpoint", checkpoint, ".lock", "the checkpoint's lock file", 1);
    add(r, &n, NULL, NULL, cfg->file, "", "this config file", 0);
    if (cfg->source == IPM_DATA_NETCDF)
        add(r, &n, "data", "path", cfg->data_path, "", "the input data", 0);
    add(r, &n, "information", "range_from", cfg->range_from, "", "the earlier run's ranges", 0);
    if (cfg->source == IPM_DATA_IDX) {
        add(r, &n, "data", "images", cfg->images, "", "the input images", 0);
        add(r, &n, "data", "labels", cfg->labels, "", "the input labels", 0);
        add(r, &n, "data", "test_images", cfg->test_images, "", "the held-out images", 0);
        add(r, &n, "data", "test_labels", cfg->test_labels, "", "the held-out labels", 0);
    }
    return n;
}

/* The suffixes of a run's side files. An output or checkpoint named with one
 * could be another run's side file: its checkpoint being written (renamed
 * away under it), its previous checkpoint or its lock (overwritten). With
 * the names kept apart, no two runs' files meet unless their outputs or
 * checkpoints do, and those are locked. */
static const char *side_suffix(const char *path)
{
    static const char *const suffix[] = {".lock", ".tmp", ".prev"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        size_t k = strlen(suffix[i]);
        if (n >= k && strcmp(path + n - k, suffix[i]) == 0)
            return suffix[i];
    }
    return NULL;
}

/* The name and, through symbolic links, the file it names. */
static int check_not_side_name(const ipm_config *cfg, const role *r, char *err)
{
    char real[PATH_MAX], why[PATH_MAX + 512];
    const char *suffix = side_suffix(r->path), *named = r->path;
    if (!suffix && realpath(r->path, real) && (suffix = side_suffix(real)))
        named = real;
    if (!suffix)
        return 0;
    int linked = named != r->path;
    snprintf(why, sizeof why,
             "%s%s%s in %s: names ending in .lock, .tmp or .prev are kept for the side files of "
             "runs (their locks, the checkpoint being written, the previous one), so this could "
             "be another run's; choose another name",
             linked ? "a link to " : "", linked ? named : "", linked ? ", which ends" : "ends",
             suffix);
    return key_fail(cfg, r, err, why);
}

int ipm_paths_check(const ipm_config *cfg, const char *checkpoint, char *err)
{
    role r[16];
    int n = collect(cfg, checkpoint, r);
    if (check_not_side_name(cfg, &r[0], err) || check_not_side_name(cfg, &r[1], err) ||
        check_writable(cfg, &r[0], err) || check_writable(cfg, &r[1], err))
        return -1;
    char why[2 * IPM_PATH_MAX];
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (!(r[i].written || r[j].written) || !same_file(r[i].path, r[j].path))
                continue;
            /* Name the later key: the earlier is the one it collides with. */
            const role *a = r[j].section ? &r[j] : &r[i], *b = a == &r[j] ? &r[i] : &r[j];
            snprintf(why, sizeof why, "the same file as %s (%s%s%s%s); refused, as %s", b->what,
                     b->section ? "[" : "", b->section ? b->section : b->path,
                     b->section ? "] " : "", b->section ? b->name : "",
                     a->written && b->written ? "one would overwrite the other"
                                              : "the run would overwrite it");
            return key_fail(cfg, a, err, why);
        }
    return 0;
}
