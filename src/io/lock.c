/* lock: fcntl write locks on PATH.lock. A lock file is removed when its
 * run ends; a run that locks a file must then check that the path still
 * names the inode it locked (another run may have removed it in between
 * and a third created a new one), and try again if not. */
#include "ipmpi/io/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipmpi/base/error.h"

struct ipm_lock {
    int fd;
    char *path; /* PATH.lock */
};

/* A removed-and-recreated lock file makes a try fail; a few tries suffice
 * unless runs start and end in a tight loop. */
#define LOCK_TRIES 8

static int set_write_lock(int fd)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    return fcntl(fd, F_SETLK, &fl);
}

/* The holder's "pid@host" as the lock file says, or "" when unreadable. */
static void read_holder(const char *lock_path, char *holder, size_t cap)
{
    holder[0] = '\0';
    FILE *f = fopen(lock_path, "r");
    if (!f)
        return;
    if (fgets(holder, (int)cap, f))
        holder[strcspn(holder, "\n")] = '\0';
    fclose(f);
}

static void write_holder(int fd)
{
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown host");
    host[sizeof host - 1] = '\0';
    char line[320];
    int n = snprintf(line, sizeof line, "%ld@%s\n", (long)getpid(), host);
    /* Best effort: the lock holds whether or not its note is written. */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)n, 0) == n)
        return;
}

static int refuse_held(const char *path, const char *lock_path, char *err)
{
    char holder[300];
    read_holder(lock_path, holder, sizeof holder);
    return ipm_fail_as(err, IPM_ERR_REFUSED,
                       "%s is in use by another run (%s%s holds %s); refused, nothing "
                       "written",
                       path, *holder ? "process " : "an unknown process", holder, lock_path);
}

/* 1: fd is locked and path still names it; 0: the file was replaced, try
 * again; -1: failed (err set). */
static int lock_once(const char *path, const char *lock_path, int *fd, char *err)
{
    /* A symbolic link there would have the lock's note written into the
     * file it names: refused, never followed. */
    *fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (*fd < 0 && errno == ELOOP)
        return ipm_fail_as(err, IPM_ERR_REFUSED,
                           "lock file %s is a symbolic link (no run makes one): remove it; "
                           "refused, nothing written",
                           lock_path);
    if (*fd < 0)
        return ipm_fail_as(err, IPM_ERR_IO, "cannot create lock file %s: %s", lock_path,
                           strerror(errno));
    if (set_write_lock(*fd) != 0) {
        int saved = errno;
        close(*fd);
        if (saved != EACCES && saved != EAGAIN)
            return ipm_fail_as(err, IPM_ERR_IO, "cannot lock %s: %s", lock_path, strerror(saved));
        return refuse_held(path, lock_path, err);
    }
    struct stat held, named;
    if (fstat(*fd, &held) == 0 && stat(lock_path, &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino)
        return 1;
    close(*fd);
    return 0;
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

int ipm_lock_acquire(ipm_lock **lock, const char *given, char *err)
{
    char path[4096];
    follow_last_links(given, path, sizeof path);
    *lock = NULL;
    ipm_lock *l = calloc(1, sizeof *l);
    size_t n = strlen(path);
    if (l)
        l->path = malloc(n + sizeof ".lock");
    if (!l || !l->path) {
        free(l);
        return ipm_fail(err, "out of memory locking %s", path);
    }
    memcpy(l->path, path, n);
    memcpy(l->path + n, ".lock", sizeof ".lock");
    int rc = 0;
    for (int t = 0; t < LOCK_TRIES && rc == 0; t++)
        rc = lock_once(path, l->path, &l->fd, err);
    if (rc == 0)
        rc = ipm_fail_as(err, IPM_ERR_REFUSED,
                         "%s: its lock file %s keeps being replaced "
                         "(other runs starting and ending on it)",
                         path, l->path);
    if (rc < 0) {
        free(l->path);
        free(l);
        return -1;
    }
    write_holder(l->fd);
    *lock = l;
    return 0;
}

int ipm_lock_probe(const char *given, char *err)
{
    char path[4096], lock_path[4096 + sizeof ".lock"];
    follow_last_links(given, path, sizeof path);
    snprintf(lock_path, sizeof lock_path, "%s.lock", path);
    int fd = open(lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0; /* no lock file (or a link there, which acquiring refuses) */
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    int held = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    close(fd);
    return held ? refuse_held(path, lock_path, err) : 0;
}

void ipm_lock_release(ipm_lock *lock)
{
    if (!lock)
        return;
    /* Unlinked while still locked, so nobody locks the old inode after us
     * (and a run that does finds the path replaced and tries again). */
    unlink(lock->path);
    close(lock->fd);
    free(lock->path);
    free(lock);
}
