/* ranges: an earlier run's adaptive binning ranges, read back from its
 * NetCDF output, for range = whole: each layer's lowest bin_lo and highest
 * bin_hi over every logged epoch (and, pooled, over every replica). A run
 * with the same config trains the same networks bit for bit, so binning
 * them with these ranges is binning with the extremes of the whole run.
 * Fill values (unmeasured layers, epochs not written) are skipped; a layer
 * without any value gets NaN. Reads only; no MPI. */
#ifndef IPMPI_IO_RANGES_H
#define IPMPI_IO_RANGES_H

/* prefix: "" (training plane) or "test_". per_replica: lo and hi hold
 * n_replicas x n_layers values (the file must have per-replica ranges,
 * scope = replica); otherwise n_layers, the extremes over all replicas.
 * Fails, naming the file and variable, when the file is not an ipmpi
 * output with range = adaptive of this shape, or of another replica count. */
int ipm_ranges_read(const char *path, const char *prefix, int n_layers, int n_replicas,
                    int per_replica, double *lo, double *hi, char *err);

/* The config text the run that wrote path kept in its output (global
 * attribute config; malloc'd, "" when it has none), or NULL with err. */
char *ipm_ranges_config(const char *path, char *err);

#endif
