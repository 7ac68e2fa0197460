/* paths: the files a run writes (the output, the checkpoint with its .prev
 * and .tmp, their .lock files) and reads (the config, the data files),
 * checked before anything is written, so that --check catches a bad path
 * and a run never destroys what it reads or writes twice:
 *  - a file written must be a regular file if it exists (not a folder, not
 *    a device such as /dev/full), in a folder that exists and can be
 *    written;
 *  - no two of them may be the same file, compared by device and inode
 *    when both exist, else by the folder's real path and the name (so
 *    "./run.nc", "run.nc" and a link to the folder are one file).
 * Errors name the config line of the key concerned, kind IPM_ERR_INPUT. */
#ifndef IPMPI_APP_PATHS_H
#define IPMPI_APP_PATHS_H

#include "ipmpi/io/config.h"

/* checkpoint: the resolved [run] checkpoint (ipm_plan_checkpoint_path). */
int ipm_paths_check(const ipm_config *cfg, const char *checkpoint, char *err);

#endif
