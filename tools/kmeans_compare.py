#!/usr/bin/python3
"""Runs scikit-learn KMeans on a streamrec feature matrix and prints its objective and time.

The matrix is the CSV `streamrec features --out FILE.csv` writes: `customer_id,cluster,f1,...,fd`
(a header line is detected and skipped). The `cluster` column is streamrec's assignment; the
script also prints the objective of that assignment (sum of squared distances of each point to
the mean of its cluster; equal to streamrec's objective after a converged re-fit), so the two
can be compared on exactly the same vectors.

  /usr/bin/python3 tools/kmeans_compare.py features.csv --n-init 10
  /usr/bin/python3 tools/kmeans_compare.py --blobs 1000000 16 8 --write blobs.csv   # test data

Needs Debian's python3-sklearn (`apt-get install -y python3-sklearn`); run it with
/usr/bin/python3, not a virtualenv's python.
"""
import argparse
import csv
import sys
import time

import numpy as np


def load(path):
    ids, clusters, rows = [], [], []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            if not row:
                continue
            try:
                values = [float(v) for v in row[2:]]
                cluster = int(row[1])
            except ValueError:
                if not rows:  # header
                    continue
                raise
            ids.append(row[0])
            clusters.append(cluster)
            rows.append(values)
    return ids, np.asarray(clusters, dtype=np.int64), np.asarray(rows, dtype=np.float32)


def assignment_objective(x, labels):
    """Sum of squared distances of the points to the mean of their cluster (labels >= 0)."""
    total = 0.0
    for c in np.unique(labels):
        if c < 0:
            continue
        pts = x[labels == c].astype(np.float64)
        total += float(((pts - pts.mean(axis=0)) ** 2).sum())
    return total


def write_blobs(path, n, d, k, seed):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(k, d)).astype(np.float32)
    labels = np.arange(n) % k
    x = centres[labels] + rng.standard_normal((n, d), dtype=np.float32)
    with open(path, "w") as f:
        f.write("customer_id,cluster," + ",".join(f"f{j + 1}" for j in range(d)) + "\n")
        for i in range(n):
            f.write(f"c{i},{labels[i]}," + ",".join(f"{v:.6g}" for v in x[i]) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="?", help="matrix: customer_id,cluster,f1..fd")
    ap.add_argument("--k", type=int, default=0, help="clusters (default: distinct values of the cluster column)")
    ap.add_argument("--n-init", type=int, default=10)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blobs", type=int, nargs=3, metavar=("N", "D", "K"),
                    help="write a well-separated blob matrix to --write instead of fitting")
    ap.add_argument("--write", help="output CSV for --blobs")
    args = ap.parse_args()

    if args.blobs:
        if not args.write:
            ap.error("--blobs needs --write FILE.csv")
        n, d, k = args.blobs
        write_blobs(args.write, n, d, k, args.seed)
        print(f"wrote {n} x {d} blobs (k={k}) to {args.write}")
        return 0
    if not args.csv:
        ap.error("give a CSV matrix (or --blobs)")

    from sklearn import __version__ as sklearn_version
    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    _, labels, x = load(args.csv)
    load_s = time.perf_counter() - t0
    n, d = x.shape
    k = args.k or int(len(np.unique(labels[labels >= 0])))
    print(f"matrix: {n} x {d}, k={k} (loaded in {load_s:.1f} s); scikit-learn {sklearn_version}")

    t0 = time.perf_counter()
    km = KMeans(n_clusters=k, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
                random_state=args.seed, algorithm="lloyd")
    km.fit(x)
    fit_s = time.perf_counter() - t0
    print(f"sklearn KMeans(n_init={args.n_init}): objective {km.inertia_:.6g}, "
          f"{km.n_iter_} iterations, {fit_s:.3f} s")

    if (labels >= 0).any():
        ours = assignment_objective(x, labels)
        print(f"cluster column (streamrec):   objective {ours:.6g}, "
              f"{100.0 * (ours - km.inertia_) / km.inertia_:+.3f}% vs sklearn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
