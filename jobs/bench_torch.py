#!/usr/bin/python3
"""Training speed in PyTorch, the baseline of jobs/bench_cnn.sh and jobs/benchmark.sh.

usage: /usr/bin/python3 jobs/bench_torch.py [--images N] [--batch B] [--epochs E]
                                            [--threads T] [--data DIR] [--seed S] [--test]
       /usr/bin/python3 jobs/bench_torch.py --dense 10,7,5,4,4,3,2 --replicas R [--samples N]
                                            [--batch B] [--epochs E] [--threads T] [--loss ce|mse]

--dense: R replicas of a 12-bit-input tanh network (the last width is the output: softmax with
cross-entropy, or with --loss mse a tanh output trained by squared error, as ipmpi's mse),
stacked into (R, ., .) tensors and trained together with torch.baddbmm, each replica on its own
batch order, Adam 1e-3 (--optimizer sgd: SGD 0.05), N random 12-bit samples (4096 by default);
prints seconds per epoch ("... s/epoch X"). --batches K: K minibatches per epoch (0: a full pass).

Trains conv:8:5x5:relu, maxpool:2x2, dense:64:tanh, dense:10:softmax (cross-entropy, Adam 1e-3)
on N Fashion-MNIST training images scaled to [0, 1], E full passes of minibatches of B (the last
one short, as ipmpi does), and prints images/second of training: forward, loss, backward and
optimizer step, batches drawn from a fresh permutation each pass. Reading and converting the data
and a few warm-up steps on a throwaway model (PyTorch's first calls allocate and pick kernels)
are not timed. The last line reads "... images/s X"; jobs/bench_cnn.sh parses it.
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
from torch import nn

FASHION = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """An IDX file (gzip or plain) as a numpy array of its declared type and shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0:
        sys.exit(f"{path}: not an IDX file")
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in types:
        sys.exit(f"{path}: unsupported IDX type 0x{raw[2]:02x}")
    ndims = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndims, offset=4)
    data = np.frombuffer(raw, dtype=types[raw[2]], offset=4 + 4 * ndims)
    return data.reshape(tuple(int(d) for d in dims))


def load(images_path, labels_path, n, rng):
    """n images drawn without replacement (all when n = 0), NCHW float32 in [0, 1], and labels."""
    x = read_idx(images_path)
    y = read_idx(labels_path)
    if n:
        if n > len(x):
            sys.exit(f"--images {n}: {images_path} has only {len(x)}")
        keep = rng.choice(len(x), n, replace=False)
        x, y = x[keep], y[keep]
    x = torch.from_numpy((x.astype(np.float32) / 255.0)[:, None, :, :].copy())
    return x, torch.from_numpy(y.astype(np.int64))


def network(height, width):
    """The same layers as ipmpi's conv:8:5x5:relu, maxpool:2x2, dense:64:tanh, dense:10:softmax;
    the softmax sits inside CrossEntropyLoss, as ipmpi fuses it with its loss gradient."""
    flat = 8 * ((height - 4) // 2) * ((width - 4) // 2)
    return nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(flat, 64), nn.Tanh(), nn.Linear(64, 10))


def train(model, x, y, batch, epochs, generator):
    """epochs full passes; returns the last batch's loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    loss = torch.tensor(float("nan"))
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            rows = order[start:start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
    return float(loss)


def accuracy(model, x, y):
    with torch.no_grad():
        hits = sum(int((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum())
                   for i in range(0, len(x), 1000))
    return hits / len(x)


def dense_main(args):
    """Stacked replicas of a dense tanh net: seconds per epoch of training."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    widths = [12] + [int(w) for w in args.dense.split(",")]
    r, n = args.replicas, args.samples
    x = torch.randint(0, 2, (n, 12)).float()
    y = torch.randint(0, widths[-1] if args.loss == "ce" else 2, (n,))
    params = []
    for k, m in zip(widths[:-1], widths[1:]):
        limit = (6.0 / (k + m)) ** 0.5
        params.append((torch.empty(r, k, m).uniform_(-limit, limit).requires_grad_(),
                       torch.zeros(r, 1, m, requires_grad=True)))
    flat = [t for pair in params for t in pair]
    opt = (torch.optim.Adam(flat, lr=1e-3) if args.optimizer == "adam"
           else torch.optim.SGD(flat, lr=0.05))
    batch = min(args.batch, n)
    batches = args.batches or (n + batch - 1) // batch

    def epoch():
        orders = torch.stack([torch.randperm(n) for _ in range(r)])
        for b in range(batches):
            start = (b * batch) % n
            rows = orders[:, start:start + batch]
            a = x[rows]
            for i, (w, bias) in enumerate(params):
                a = torch.baddbmm(bias, a, w)
                if i < len(params) - 1 or args.loss == "mse":
                    a = torch.tanh(a)
            if args.loss == "ce":
                loss = nn.functional.cross_entropy(a.reshape(-1, widths[-1]), y[rows].reshape(-1))
            else:
                target = (2.0 * y[rows].float() - 1.0).unsqueeze(-1)
                loss = ((a - target) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            (loss * r).backward()  # each replica's own mean loss
            opt.step()

    for _ in range(2):
        epoch()  # warm-up: allocation and kernel choice
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        epoch()
    seconds = (time.perf_counter() - t0) / args.epochs
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s): {r} stacked replicas "
          f"of 12-{args.dense}, batch {batch}, {batches} batches: s/epoch {seconds:.6f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10000, help="training images (0 = all 60000)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2, help="full passes over the images")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--data", default=FASHION, help="directory of the four Fashion-MNIST .gz files")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--test", action="store_true",
                    help="also print training and test accuracy after training (not timed)")
    ap.add_argument("--dense", help="widths of a stacked dense net (see above)")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--batches", type=int, default=0)
    ap.add_argument("--loss", choices=["ce", "mse"], default="ce")
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    args = ap.parse_args()
    if args.dense:
        return dense_main(args)
    if args.images < 0 or args.batch < 1 or args.epochs < 1 or args.threads < 1:
        ap.error("--images must be >= 0, --batch, --epochs and --threads >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x, y = load(os.path.join(args.data, "train-images-idx3-ubyte.gz"),
                os.path.join(args.data, "train-labels-idx1-ubyte.gz"), args.images, rng)
    generator = torch.Generator().manual_seed(args.seed)

    warm = min(len(x), 4 * args.batch)
    train(network(*x.shape[2:]), x[:warm], y[:warm], args.batch, 1, generator)

    model = network(*x.shape[2:])
    t0 = time.perf_counter()
    last_loss = train(model, x, y, args.batch, args.epochs, generator)
    seconds = time.perf_counter() - t0

    if args.test:
        tx, ty = load(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"),
                      os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"), 0, rng)
        print(f"accuracy: train {accuracy(model, x, y):.4f}  test {accuracy(model, tx, ty):.4f}")
    images = args.epochs * len(x)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s): {args.epochs} epochs x "
          f"{len(x)} images, batch {args.batch}, last batch loss {last_loss:.4f}: "
          f"{seconds:.3f} s, images/s {images / seconds:.1f}")


if __name__ == "__main__":
    main()
