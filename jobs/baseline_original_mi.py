#!/usr/bin/python3
"""The baseline for jobs/benchmark.sh: the original IDNNs information
estimator (Shwartz-Ziv's calc_information_sampling, serial, numpy), as the
seed report's Python pipeline ran it, on the activations an ipmpi run
stored. Per logged epoch: the simple estimate of every replica and layer,
and the extended estimate on the stacked replicas. Prints ms per epoch.

usage: baseline_original_mi.py RUN.nc [max_epochs]
       baseline_original_mi.py --compare RUN.nc
  --compare: checks that ipmpi's simple and pooled estimates equal the
  original estimator's on every stored epoch (to 1e-9 bits); exit 1 if not.
"""
import sys
import time

import numpy as np
from netCDF4 import Dataset


def conditional_entropy(p_cond, data, inverse):
    # The original loops over every value of the condition and builds an
    # N-long mask each time: O(N * distinct values).
    total = 0.0
    for i in range(p_cond.shape[0]):
        ts = np.ascontiguousarray(data[inverse == i, :])
        rows = ts.view(np.dtype((np.void, ts.dtype.itemsize * ts.shape[1])))
        _, counts = np.unique(rows, return_counts=True)
        p = counts / float(counts.sum())
        total += p_cond[i] * (-np.sum(p * np.log2(p)))
    return total


def original_information(data, bins, x_ids, labels):
    digitized = bins[np.digitize(data.reshape(-1), bins) - 1].reshape(len(data), -1)
    rows = np.ascontiguousarray(digitized).view(
        np.dtype((np.void, digitized.dtype.itemsize * digitized.shape[1])))
    _, counts = np.unique(rows, return_counts=True)
    p_t = counts / float(counts.sum())
    _, inv_x, cx = np.unique(x_ids, return_inverse=True, return_counts=True)
    _, inv_y, cy = np.unique(labels, return_inverse=True, return_counts=True)
    h_t = -np.sum(p_t * np.log2(p_t))
    i_xt = h_t - conditional_entropy(cx / cx.sum(), digitized, inv_x)
    i_ty = h_t - conditional_entropy(cy / cy.sum(), digitized, inv_y)
    return i_xt, i_ty


def compare(path):
    with Dataset(path) as ds:
        ds.set_auto_mask(False)
        bins = np.linspace(ds.range_lo, ds.range_hi, int(ds.bins)).astype(np.float32)
        x_ids = np.array(ds["sample_x_id"][:])
        labels = np.array(ds["sample_y"][:])
        logged = list(np.array(ds["epoch"][:]))
        worst, checked = 0.0, 0
        for slot, epoch in enumerate(np.array(ds["activation_epoch"][:])):
            row = logged.index(epoch)
            for k in range(len(ds.dimensions["layer"])):
                acts = np.array(ds[f"T{k + 1}"][slot])
                replicas = acts.shape[0]
                for r in range(replicas):
                    got = (ds["I_XT_simple"][row, r, k], ds["I_TY_simple"][row, r, k])
                    want = original_information(acts[r], bins, x_ids, labels)
                    worst = max(worst, *(abs(g - w) for g, w in zip(got, want)))
                    checked += 2
                if "I_XT_pooled" in ds.variables:
                    stacked = acts.reshape(-1, acts.shape[-1])
                    want = original_information(stacked, bins, np.tile(x_ids, replicas),
                                                np.tile(labels, replicas))
                    got = (ds["I_XT_pooled"][row, k], ds["I_TY_pooled"][row, k])
                    worst = max(worst, *(abs(g - w) for g, w in zip(got, want)))
                    checked += 2
    print(f"original estimator vs ipmpi: {checked} values, max |diff| {worst:.3g} bits")
    return 0 if checked > 0 and worst <= 1e-9 else 1


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    if sys.argv[1] == "--compare" and len(sys.argv) == 3:
        return compare(sys.argv[2])
    with Dataset(sys.argv[1]) as ds:
        ds.set_auto_mask(False)
        bins = np.linspace(ds.range_lo, ds.range_hi, int(ds.bins)).astype(np.float32)
        x_ids = np.array(ds["sample_x_id"][:])
        labels = np.array(ds["sample_y"][:])
        n_layers = len(ds.dimensions["layer"])
        n_epochs = len(ds.dimensions["activation_epoch"])
        if len(sys.argv) > 2:
            n_epochs = min(n_epochs, int(sys.argv[2]))
        acts = [np.array(ds[f"T{k + 1}"][:n_epochs]) for k in range(n_layers)]
    replicas = acts[0].shape[1]
    start = time.perf_counter()
    for e in range(n_epochs):
        for layer in acts:
            for r in range(replicas):
                original_information(layer[e, r], bins, x_ids, labels)
            stacked = layer[e].reshape(-1, layer.shape[-1])
            original_information(stacked, bins, np.tile(x_ids, replicas), np.tile(labels, replicas))
    seconds = time.perf_counter() - start
    print(f"original estimator: {n_epochs} epochs x {n_layers} layers x {replicas} replicas "
          f"(+ extended): {1e3 * seconds / n_epochs:.2f} ms per epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
