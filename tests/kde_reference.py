#!/usr/bin/python3
"""Independent numpy check of ipmpi's KDE bounds (src/info/kde.c, src/parallel/kde.c).

usage: kde_reference.py --self-test     hand-computed cases
       kde_reference.py --compare DIR   every DIR/*.bin written by test_kde_mpi --dump DIR
       kde_reference.py --run RUN.nc    a run's I_XT_kde_upper etc. against its stored
                                        activations (every stored epoch that was logged)

The estimator is Saxe et al.'s (2018), written here the way their code is
(kde.py of the information-bottleneck code): for points c_1..c_m in R^d and
noise variance v, in nats,
    H_KL(c, v) = d/2 + d/2 ln(2 pi v) - mean_i [logsumexp_j(-|c_i - c_j|^2 / 2v) - ln m]
    H_BD(c, v) = H_KL(c, 4v) + d/2 ln(1/4)
and, with R replicas pooled (all N R points weighted equally),
    H(T)   = H(all points)
    H(T|Y) = sum_y p(y) H(points of class y),   p(y) = N_y / N
    H(T|X) = mean_i H(sample i's R points)     (R = 1: d/2 (ln(2 pi v) + 1))
    I(X;T) upper = H_KL(T) - H_BD(T|X),  lower = H_BD(T) - H_KL(T|X)
    I(T;Y) upper = H_KL(T) - H_KL(T|Y),  lower = H_BD(T) - H_BD(T|Y)
converted to bits. Distances come from differences (not dot products),
logsumexp is done by hand (no scipy), and every term is an entropy of its own
point set: no code or formula is shared with the C implementation's
rearranged sums.

A .bin file: int32 R, N, d; float64 v; int32 labels[N]; float32
activations[R][N][d]; float64 ipmpi's bounds (xt_upper, xt_lower, ty_upper,
ty_lower, then the six entropies H_KL(T), H_BD(T), H_KL(T|X), H_BD(T|X),
H_KL(T|Y), H_BD(T|Y)). Values must agree to 1e-9 bits, or 1e-9 relative
where larger than 1.

Exit status: 0 all match, 1 a mismatch, 2 usage error, 77 nothing to check.
"""
import glob
import os
import sys

import numpy as np

TOLERANCE = 1e-9
ROWS = 256            # rows of a distance block, to bound memory
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_SKIP = 0, 1, 2, 77
NAMES = ["I(X;T) upper", "I(X;T) lower", "I(T;Y) upper", "I(T;Y) lower",
         "H_KL(T)", "H_BD(T)", "H_KL(T|X)", "H_BD(T|X)", "H_KL(T|Y)", "H_BD(T|Y)"]


def logsumexp_rows(a):
    """log sum_j exp(a[i, j]) for every row, shifted by the row's maximum."""
    top = a.max(axis=1)
    return top + np.log(np.exp(a - top[:, None]).sum(axis=1))


def squared_distances(rows, points):
    """|rows_i - points_j|^2 from differences, one coordinate at a time."""
    d2 = np.zeros((rows.shape[0], points.shape[0]))
    for k in range(points.shape[1]):
        d2 += (rows[:, k, None] - points[None, :, k]) ** 2
    return d2


def entropy_kl(points, var):
    """Saxe et al.'s entropy_estimator_kl, in nats."""
    m, d = points.shape
    lse = np.concatenate([logsumexp_rows(-squared_distances(points[i:i + ROWS], points) / (2 * var))
                          for i in range(0, m, ROWS)])
    norm = d / 2.0 * np.log(2 * np.pi * var)
    return d / 2.0 - np.mean(lse - np.log(m) - norm)


def entropy_bd(points, var):
    """Saxe et al.'s entropy_estimator_bd, in nats."""
    return entropy_kl(points, 4 * var) + points.shape[1] / 2.0 * np.log(0.25)


def per_sample_entropies(acts, var):
    """H_KL and H_BD (nats) of each sample's R points: arrays of length N."""
    r, n, d = acts.shape
    by_sample = np.transpose(acts, (1, 0, 2))                       # N x R x d
    d2 = ((by_sample[:, :, None, :] - by_sample[:, None, :, :]) ** 2).sum(axis=3)  # N x R x R
    out = []
    for scale in (2.0, 8.0):
        a = -d2 / (scale * var)
        top = a.max(axis=2)
        lse = top + np.log(np.exp(a - top[:, :, None]).sum(axis=2))  # N x R
        out.append(d / 2.0 + d / 2.0 * np.log(2 * np.pi * var) - np.mean(lse - np.log(r), axis=1))
    # H_BD = H_KL at 4v + d/2 ln(1/4): the 8v logsumexp with the 2v constants, shifted back
    out[1] = out[1] + d / 2.0 * np.log(4.0) + d / 2.0 * np.log(0.25)
    return out


def kde_bounds(acts, labels, var):
    """The ten values (bits) for activations R x N x d and N labels."""
    acts = acts.astype(np.float64)
    r, n, d = acts.shape
    everything = acts.reshape(r * n, d)
    h_kl, h_bd = entropy_kl(everything, var), entropy_bd(everything, var)
    x_kl, x_bd = (float(np.mean(h)) for h in per_sample_entropies(acts, var))
    y_kl = y_bd = 0.0
    for c in np.unique(labels):
        members = acts[:, labels == c, :].reshape(-1, d)
        p = np.mean(labels == c)
        y_kl += p * entropy_kl(members, var)
        y_bd += p * entropy_bd(members, var)
    nats = np.array([h_kl - x_bd, h_bd - x_kl, h_kl - y_kl, h_bd - y_bd,
                     h_kl, h_bd, x_kl, x_bd, y_kl, y_bd])
    return nats / np.log(2)


def read_case(path):
    with open(path, "rb") as f:
        r, n, d = np.fromfile(f, np.int32, 3)
        var = float(np.fromfile(f, np.float64, 1)[0])
        labels = np.fromfile(f, np.int32, n)
        acts = np.fromfile(f, np.float32, r * n * d).reshape(r, n, d)
        theirs = np.fromfile(f, np.float64, len(NAMES))
    if len(theirs) != len(NAMES):
        raise ValueError(f"{path}: truncated")
    return acts, labels, var, theirs


def agree(ours, theirs):
    scale = np.maximum(1.0, np.abs(ours))
    return np.abs(ours - theirs) <= TOLERANCE * scale


def compare(directory):
    paths = sorted(glob.glob(os.path.join(directory, "*.bin")))
    if not paths:
        print(f"nothing to check in {directory}")
        return EXIT_SKIP
    status = EXIT_OK
    for path in paths:
        acts, labels, var, theirs = read_case(path)
        ours = kde_bounds(acts, labels, var)
        worst = float(np.max(np.abs(ours - theirs) / np.maximum(1.0, np.abs(ours))))
        print(f"{os.path.basename(path)}: R={acts.shape[0]} N={acts.shape[1]} d={acts.shape[2]}"
              f" largest difference {worst:.2e}")
        for name, o, t, ok in zip(NAMES, ours, theirs, agree(ours, theirs)):
            if not ok:
                print(f"  MISMATCH {name}: numpy {o!r}, ipmpi {t!r}")
                status = EXIT_MISMATCH
    return status


RUN_VARIABLES = ["I_XT_kde_upper", "I_XT_kde_lower", "I_TY_kde_upper", "I_TY_kde_lower"]


def compare_run(path):
    """The four bounds of every measured layer at every stored, logged epoch,
    recomputed from the stored float32 activations T<k>(slot, replica, sample, unit)."""
    import netCDF4
    with netCDF4.Dataset(path) as ds:
        if "activation_epoch" not in ds.variables or "I_XT_kde_upper" not in ds.variables:
            print(f"{path}: no stored activations or no kde bounds")
            return EXIT_SKIP
        var = float(ds.getncattr("kde_variance"))
        labels = np.asarray(ds["sample_y"][:], dtype=np.int64)
        logged = [int(e) for e in np.ma.getdata(ds["epoch"][:])]
        measured = np.asarray(ds["layer_measured"][:])
        status, checked, worst = EXIT_OK, 0, 0.0
        stored = np.ma.getdata(ds["activation_epoch"][:])
        for slot, epoch in enumerate(int(e) for e in stored):
            if epoch not in logged:
                continue
            row = logged.index(epoch)
            for layer in np.flatnonzero(measured):
                acts = np.asarray(ds[f"T{layer + 1}"][slot], dtype=np.float32)
                ours = kde_bounds(acts, labels, var)[:4]
                theirs = np.array([float(ds[v][row, layer]) for v in RUN_VARIABLES])
                worst = max(worst, float(np.max(np.abs(ours - theirs) /
                                                np.maximum(1.0, np.abs(ours)))))
                checked += 4
                for name, o, t, ok in zip(RUN_VARIABLES, ours, theirs, agree(ours, theirs)):
                    if not ok:
                        print(f"  MISMATCH epoch {epoch} layer {layer + 1} {name}: numpy {o!r}, "
                              f"ipmpi {t!r}")
                        status = EXIT_MISMATCH
    print(f"{os.path.basename(path)}: {checked} bounds checked, largest difference {worst:.2e}")
    return status if checked else EXIT_SKIP


def self_test():
    """Hand-computed cases."""
    failures = 0

    def near(what, got, want, tol=1e-12):
        nonlocal failures
        if abs(got - want) > tol:
            print(f"self-test {what}: {got!r} != {want!r}")
            failures += 1

    # Two points 1.5 apart in 1-D, v = 1/2, classes 0 and 1 (H(Y) = 1 bit):
    # I = 1 - log2(1 + exp(-D/2v)) (upper), with 8v (lower), for both planes.
    acts = np.array([[[0.0], [1.5]]])
    b = kde_bounds(acts, np.array([0, 1]), 0.5)
    near("two points, I(X;T) upper", b[0], 1 - np.log2(1 + np.exp(-2.25)))
    near("two points, I(X;T) lower", b[1], 1 - np.log2(1 + np.exp(-2.25 / 4)))
    near("two points, I(T;Y) upper", b[2], b[0])
    noise = 0.5 * np.log2(2 * np.pi * np.e * 0.5)
    near("one network, H(T|X) = noise (KL)", b[6], noise)
    near("one network, H(T|X) = noise (BD)", b[7], noise)
    # Coincident points: nothing to learn.
    b = kde_bounds(np.zeros((2, 4, 3)), np.array([0, 1, 1, 0]), 1e-3)
    near("coincident, I(X;T) upper", b[0], 0.0)
    near("coincident, I(T;Y) lower", b[3], 0.0)
    # Far apart: I(X;T) = log2 N, I(T;Y) = H(Y).
    acts = np.arange(6, dtype=np.float64).reshape(1, 6, 1) * 100
    b = kde_bounds(acts, np.array([0, 0, 0, 0, 1, 1]), 1e-3)
    near("far apart, I(X;T) lower", b[1], np.log2(6))
    near("far apart, I(T;Y) upper", b[2], np.log2(3) - 2 / 3)
    # Two replicas (test_kde.c's case): sample 0 at 0 and 1, sample 1 at 3 and 3, v = 1/2.
    acts = np.array([[[0.0], [3.0]], [[1.0], [3.0]]])
    b = kde_bounds(acts, np.array([0, 1]), 0.5)
    l_all = [(np.log(1 + np.exp(-q) + 2 * np.exp(-9 * q)) + np.log(1 + np.exp(-q) + 2 * np.exp(-4 * q))
              + 2 * np.log(2 + np.exp(-9 * q) + np.exp(-4 * q))) / 4 for q in (1.0, 0.25)]
    l_x = [(2 * np.log(1 + np.exp(-q)) + 2 * np.log(2)) / 4 for q in (1.0, 0.25)]
    near("two replicas, I(X;T) upper", b[0], (np.log(2) - l_all[0] + l_x[1]) / np.log(2))
    near("two replicas, I(X;T) lower", b[1], (np.log(2) - l_all[1] + l_x[0]) / np.log(2))
    print("self-test passed" if failures == 0 else f"self-test: {failures} failure(s)")
    return EXIT_OK if failures == 0 else EXIT_MISMATCH


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return self_test()
    if len(argv) == 3 and argv[1] == "--compare":
        return compare(argv[2])
    if len(argv) == 3 and argv[1] == "--run":
        return compare_run(argv[2])
    print(__doc__.strip().splitlines()[2], file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main(sys.argv))
