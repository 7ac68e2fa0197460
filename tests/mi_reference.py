#!/usr/bin/python3
"""Independent check of an ipmpi output file's information estimates.

usage: mi_reference.py RUN.nc      check the simple and pooled estimates (and their
                                   Miller-Madow values, *_mm, when the file has them)
       mi_reference.py --self-test build tiny files with hand-computed values

For every stored activation epoch that is also a logged information epoch,
every replica and every layer, this re-bins the stored float32 activations
(np.digitize against np.linspace(lo, hi, bins).astype(np.float32)) and
computes, straight from the definitions (in bits),
    I(X;T) = H(T) - H(T|X),   I(T;Y) = H(T) - H(T|Y),
    H(T|C) = sum_c p(c) H(T | C = c) = -sum_{c,t} p(c,t) log2 p(c,t) / p(c),
for one replica (simple) and for all (sample, replica) pairs (pooled).
With range = adaptive the edges of each layer and epoch come from the
file's bin_lo/bin_hi (per replica when they have a replica dimension:
scope = replica); with binning = width they are k * bin_width for k from
round(bin_lo / w) to round(bin_hi / w), in double, rounded to float32;
with binning = quantile they are the file's bin_edges<k> of each replica
(per unit: a row of edges per unit, each unit digitized with its own).
Layers with layer_measured = 0 are skipped.
It shares no code with the C implementation.

Exit status: 0 all match (|diff| <= 1e-9), 1 a mismatch, 2 usage error,
77 nothing to check (no stored activations).
"""
import os
import sys
import tempfile

import numpy as np
import netCDF4

TOLERANCE = 1e-9
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_SKIP = 0, 1, 2, 77


def entropy(rows):
    """Plug-in entropy (bits) of the empirical distribution of rows."""
    _, counts = np.unique(rows, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log2(p)))


def conditional_entropy(t_rows, c):
    """H(T | C) = -sum_{c,t} p(c,t) log2(p(c,t) / p(c))."""
    joint = np.column_stack([c, t_rows])
    joint_keys, joint_counts = np.unique(joint, axis=0, return_counts=True)
    c_values, c_counts = np.unique(c, return_counts=True)
    c_of_joint = c_counts[np.searchsorted(c_values, joint_keys[:, 0])]
    n = len(c)
    p_joint = joint_counts / n
    return float(-np.sum(p_joint * np.log2(joint_counts / c_of_joint)))


def plane_point(t_rows, x, y):
    h_t = entropy(t_rows)
    return h_t - conditional_entropy(t_rows, x), h_t - conditional_entropy(t_rows, y)


def mm_entropy(columns):
    """Miller-Madow corrected entropy (bits) of the rows of the stacked columns:
    plug-in + (non-empty cells - 1) / (2 N ln 2)."""
    rows = np.column_stack(columns)
    _, counts = np.unique(rows, axis=0, return_counts=True)
    n = counts.sum()
    p = counts / n
    return float(-np.sum(p * np.log2(p)) + (len(counts) - 1) / (2.0 * n * np.log(2.0)))


def mm_plane_point(t_rows, x, y):
    """I_MM(X;T) = H_MM(T) + H_MM(X) - H_MM(X,T), and the same for Y, every
    entropy corrected on its own (joint entropies, not the conditional ones above)."""
    h_t = mm_entropy([t_rows])
    return (h_t + mm_entropy([x]) - mm_entropy([x, t_rows]),
            h_t + mm_entropy([y]) - mm_entropy([y, t_rows]))


def bin_rows(values, edges):
    """Bin indices of float32 activations (samples x units); edges 2-D: one row per unit."""
    values = np.asarray(values, dtype=np.float32)
    if edges.ndim == 2:
        return np.stack([np.digitize(values[:, u], edges[u]) for u in range(values.shape[1])],
                        axis=1).astype(np.int64)
    return np.digitize(values, edges).astype(np.int64)


def stored_slots(ds):
    """(slot, epoch) of every activation slot that was written."""
    epochs = ds.variables["activation_epoch"][:]
    mask = np.ma.getmaskarray(epochs)
    return [(s, int(e)) for s, (e, m) in enumerate(zip(np.ma.getdata(epochs), mask)) if not m]


def layer_count(ds):
    k = 0
    while "T%d" % (k + 1) in ds.variables:
        k += 1
    return k


class Comparison:
    def __init__(self):
        self.checked = 0
        self.mismatches = []
        self.max_diff = 0.0

    def compare(self, what, got, want):
        if np.ma.is_masked(got):
            self.mismatches.append("%s: no value in the file (expected %.12g)" % (what, want))
            return
        diff = abs(float(got) - want)
        self.checked += 1
        self.max_diff = max(self.max_diff, diff)
        if not diff <= TOLERANCE:
            self.mismatches.append("%s: file %.15g, reference %.15g (diff %.3g)"
                                   % (what, float(got), want, diff))


def width_edges(lo, hi, w):
    """Saxe et al.'s bins anchored at 0: edges k * w between two stored ends."""
    k = np.arange(round(lo / w), round(hi / w) + 1, dtype=np.float64)
    return (k * w).astype(np.float32)


def edge_maker(ds):
    """edges(row, replica, layer): the float32 bin edges the run used."""
    bins = int(ds.getncattr("bins"))
    if "bin_edges1" in ds.variables:
        return lambda row, replica, layer: np.asarray(
            ds.variables["bin_edges%d" % (layer + 1)][row, replica], dtype=np.float32)
    if "bin_lo" in ds.variables:
        lo, hi = ds.variables["bin_lo"], ds.variables["bin_hi"]
        per_replica = lo.dimensions[1] == "replica"

        def ends(row, replica, layer):
            at = (row, replica, layer) if per_replica else (row, layer)
            return float(lo[at]), float(hi[at])
        if "bin_width" in ds.ncattrs():
            w = float(ds.getncattr("bin_width"))
            return lambda row, replica, layer: width_edges(*ends(row, replica, layer), w)
        return lambda row, replica, layer: np.linspace(*ends(row, replica, layer),
                                                       bins).astype(np.float32)
    fixed = np.linspace(float(ds.getncattr("range_lo")), float(ds.getncattr("range_hi")),
                        bins).astype(np.float32)
    return lambda row, replica, layer: fixed


def check_slot(ds, slot, row, n_layers, edges_of, x, y, out):
    variables = ds.variables
    replicas = len(ds.dimensions["replica"])
    measured = (np.asarray(variables["layer_measured"][:]) if "layer_measured" in variables
                else np.ones(n_layers, dtype=int))
    for layer in range(n_layers):
        if not measured[layer]:
            continue
        acts = variables["T%d" % (layer + 1)]
        acts.set_auto_mask(False)
        per_replica = [bin_rows(acts[slot, r, :, :], edges_of(row, r, layer))
                       for r in range(replicas)]
        if "I_XT_simple" in variables:
            for r, t in enumerate(per_replica):
                i_xt, i_ty = plane_point(t, x, y)
                where = "epoch %d replica %d layer %d" % (int(variables["epoch"][row]), r, layer + 1)
                out.compare("I_XT_simple " + where, variables["I_XT_simple"][row, r, layer], i_xt)
                out.compare("I_TY_simple " + where, variables["I_TY_simple"][row, r, layer], i_ty)
        if "I_XT_simple_mm" in variables:
            for r, t in enumerate(per_replica):
                i_xt, i_ty = mm_plane_point(t, x, y)
                where = "epoch %d replica %d layer %d" % (int(variables["epoch"][row]), r, layer + 1)
                out.compare("I_XT_simple_mm " + where, variables["I_XT_simple_mm"][row, r, layer],
                            i_xt)
                out.compare("I_TY_simple_mm " + where, variables["I_TY_simple_mm"][row, r, layer],
                            i_ty)
        t = np.concatenate(per_replica, axis=0)
        where = "epoch %d layer %d" % (int(variables["epoch"][row]), layer + 1)
        if "I_XT_pooled" in variables:
            i_xt, i_ty = plane_point(t, np.tile(x, replicas), np.tile(y, replicas))
            out.compare("I_XT_pooled " + where, variables["I_XT_pooled"][row, layer], i_xt)
            out.compare("I_TY_pooled " + where, variables["I_TY_pooled"][row, layer], i_ty)
        if "I_XT_pooled_mm" in variables:
            i_xt, i_ty = mm_plane_point(t, np.tile(x, replicas), np.tile(y, replicas))
            out.compare("I_XT_pooled_mm " + where, variables["I_XT_pooled_mm"][row, layer], i_xt)
            out.compare("I_TY_pooled_mm " + where, variables["I_TY_pooled_mm"][row, layer], i_ty)


def check_file(path):
    try:
        ds = netCDF4.Dataset(path, "r")
    except (OSError, RuntimeError) as e:
        print("mi_reference: cannot open %s: %s" % (path, e), file=sys.stderr)
        return EXIT_USAGE
    with ds:
        if "activation_epoch" not in ds.variables or layer_count(ds) == 0:
            print("mi_reference: %s stores no activations; nothing to check" % path)
            return EXIT_SKIP
        slots = stored_slots(ds)
        edges_of = edge_maker(ds)
        x = np.asarray(ds.variables["sample_x_id"][:], dtype=np.int64)
        y = np.asarray(ds.variables["sample_y"][:], dtype=np.int64)
        logged = [int(e) for e in np.ma.getdata(ds.variables["epoch"][:])]
        out, skipped = Comparison(), []
        for slot, epoch in slots:
            if epoch not in logged:
                skipped.append(epoch)
                continue
            check_slot(ds, slot, logged.index(epoch), layer_count(ds), edges_of, x, y, out)
    if skipped:
        print("mi_reference: activation epochs without information estimates: %s" % skipped)
    if out.checked == 0 and not out.mismatches:
        print("mi_reference: %s: no stored activation epoch has estimates to compare" % path)
        return EXIT_SKIP
    for line in out.mismatches[:20]:
        print("MISMATCH " + line)
    print("mi_reference: %s: %d values checked, %d mismatches, max |diff| %.3g"
          % (path, out.checked, len(out.mismatches), out.max_diff))
    return EXIT_MISMATCH if out.mismatches else EXIT_OK


# ---------------------------------------------------------------- self-test

def h2(p):
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def self_test_values():
    """Hand-computed estimates for the self-test activations (bits).

    bins 3 on [-1, 1]: edges -1, 0, 1; v < -1 -> 0, [-1, 0) -> 1, [0, 1) -> 2, >= 1 -> 3.
    samples: x = 0 0 1 2, y = 0 0 1 1.
    Layer 1, replica 0: -.5 -.5 .5 .5 -> bins 1 1 2 2 (T = Y): I(X;T) = I(T;Y) = 1.
             replica 1: -.5 -.5 -.5 .5 -> 1 1 1 2: H(T) = h2(1/4); a function of x,
             so I(X;T) = h2(1/4); y = 1 holds 1 2: H(T|Y) = 1/2 * 1 bit,
             I(T;Y) = h2(1/4) - 1/2.
             pooled (8 pairs): t counts 5, 3: H(T) = h2(3/8); x = 1 holds 2 1
             (p = 1/4), the other x one bin each: H(T|X) = 1/4, I(X;T) = h2(3/8) - 1/4;
             y = 1 holds 2 2 1 2 (p = 1/2): I(T;Y) = h2(3/8) - h2(1/4) / 2.
    Layer 2, replica 0: (-2, .5) (-2, .5) (1.5, .5) (.2, -.3) -> A A B C:
             I(X;T) = H(T) = 1.5; H(T|Y) = 1/2 * 1 bit: I(T;Y) = 1.
             replica 1: (.1, .1) four times: constant: 0, 0.
             pooled: A2 B1 C1 D4: H(T) = 1.75; x0 = A A D D, x1 = B D, x2 = C D:
             H(T|X) = 1/2 + 1/4 + 1/4 = 1, I(X;T) = 0.75; y0 = A A D D, y1 = B C D D:
             H(T|Y) = 1/2 * 1 + 1/2 * 1.5 = 1.25, I(T;Y) = 0.5.
    """
    simple_xt = [[1.0, 1.5], [h2(0.25), 0.0]]
    simple_ty = [[1.0, 1.0], [h2(0.25) - 0.5, 0.0]]
    return simple_xt, simple_ty, [h2(0.375) - 0.25, 0.75], [h2(0.375) - h2(0.25) / 2, 0.5]


def write_self_test_file(path, with_activations=True, perturb=0.0):
    t1 = np.array([[[-0.5], [-0.5], [0.5], [0.5]], [[-0.5], [-0.5], [-0.5], [0.5]]], np.float32)
    t2 = np.array([[[-2, 0.5], [-2, 0.5], [1.5, 0.5], [0.2, -0.3]], [[0.1, 0.1]] * 4], np.float32)
    simple_xt, simple_ty, pooled_xt, pooled_ty = self_test_values()
    with netCDF4.Dataset(path, "w") as ds:
        ds.bins, ds.range_lo, ds.range_hi = np.int32(3), -1.0, 1.0
        ds.createDimension("epoch", None)
        ds.createDimension("replica", 2)
        ds.createDimension("layer", 2)
        ds.createVariable("epoch", "i4", ("epoch",))[:] = [0, 5]
        info = {"I_XT_simple": simple_xt, "I_TY_simple": simple_ty}
        for name, value in info.items():
            v = ds.createVariable(name, "f8", ("epoch", "replica", "layer"))
            v[:] = np.stack([np.full((2, 2), 9.0), np.array(value)])  # epoch 0 is not checked
        for name, value in {"I_XT_pooled": pooled_xt, "I_TY_pooled": pooled_ty}.items():
            v = ds.createVariable(name, "f8", ("epoch", "layer"))
            v[:] = np.stack([np.full(2, 9.0), np.array(value)])
        ds.variables["I_XT_pooled"][1, 0] += perturb
        if not with_activations:
            return
        ds.createDimension("activation_epoch", 2)
        ds.createDimension("sample", 4)
        ds.createDimension("unit1", 1)
        ds.createDimension("unit2", 2)
        ae = ds.createVariable("activation_epoch", "i4", ("activation_epoch",))
        ae[0] = 5  # slot 1 stays unwritten (fill value), as in a killed run
        ds.createVariable("sample_x_id", "i4", ("sample",))[:] = [0, 0, 1, 2]
        ds.createVariable("sample_y", "i4", ("sample",))[:] = [0, 0, 1, 1]
        dims = ("activation_epoch", "replica", "sample")
        ds.createVariable("T1", "f4", dims + ("unit1",))[0] = t1
        ds.createVariable("T2", "f4", dims + ("unit2",))[0] = t2


def mm_self_test():
    """Miller-Madow by hand. T = 1 1 2 2, x = 0 0 1 2, y = 0 0 1 1, N = 4,
    c = 1 / (2 N ln 2) a cell: H_MM(T) = 1 + c, H_MM(X) = 1.5 + 2c,
    H_MM(X,T) = 1.5 + 2c (3 cells), so I_MM(X;T) = 1 + c; H_MM(Y) = 1 + c,
    H_MM(Y,T) = 1 + c (2 cells), I_MM(T;Y) = 1 + c. A constant T over the
    same samples: I_MM(X;T) = 0 + 0 + 1.5 + 2c - (1.5 + 2c) = 0."""
    c = 1.0 / (8.0 * np.log(2.0))
    x, y = np.array([0, 0, 1, 2]), np.array([0, 0, 1, 1])
    cases = [(mm_plane_point(np.array([[1], [1], [2], [2]]), x, y), (1 + c, 1 + c)),
             (mm_plane_point(np.zeros((4, 1), int), x, y), (0.0, 0.0))]
    failures = 0
    for got, want in cases:
        if max(abs(got[0] - want[0]), abs(got[1] - want[1])) > 1e-14:
            print("SELF-TEST FAILED: Miller-Madow %r, by hand %r" % (got, want))
            failures += 1
    return failures


def self_test():
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("good", {}, EXIT_OK),
                 ("perturbed by 1e-6", {"perturb": 1e-6}, EXIT_MISMATCH),
                 ("perturbed by 1e-10", {"perturb": 1e-10}, EXIT_OK),
                 ("no activations", {"with_activations": False}, EXIT_SKIP)]
        for name, options, want in cases:
            path = os.path.join(tmp, "self_test.nc")
            write_self_test_file(path, **options)
            got = check_file(path)
            if got != want:
                print("SELF-TEST FAILED: %s: exit %d, expected %d" % (name, got, want))
                failures += 1
        if check_file(os.path.join(tmp, "missing.nc")) != EXIT_USAGE:
            print("SELF-TEST FAILED: a missing file must be a usage error")
            failures += 1
    failures += mm_self_test()
    print("self-test %s" % ("passed" if failures == 0 else "FAILED"))
    return EXIT_OK if failures == 0 else EXIT_MISMATCH


def main(argv):
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return EXIT_OK
    if len(argv) != 2:
        print("usage: mi_reference.py RUN.nc | --self-test", file=sys.stderr)
        return EXIT_USAGE
    return self_test() if argv[1] == "--self-test" else check_file(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
