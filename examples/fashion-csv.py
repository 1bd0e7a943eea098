#!/usr/bin/env python3
"""Writes Fashion-MNIST as two CSV files, the input of examples/fashion-csv.toml.

    python3 examples/fashion-csv.py [--train N] [--test N] [OUTDIR]

OUTDIR (default: data) gets fashion-train.csv and fashion-test.csv: a header
row "label,px0,...,px783", then one image per line, its class first and its
784 pixels (0 to 255) after. Only Python's standard library is used; the
images come from the Debian package dataset-fashion-mnist. Then, from the
folder OUTDIR is in:

    pstrain launch --config examples/fashion-csv.toml --workers 2 --servers 1

pstrain converts each CSV file once into a binary cache in the run directory
(docs/formats.md, "CSV cache") and standardises every pixel with the training
set's own mean and deviation (data.normalize = "auto").
"""
import argparse
import gzip
import os

SRC = "/usr/share/datasets/fashion-mnist"


def read(name, offset, size, n):
    with gzip.open(os.path.join(SRC, name)) as f:
        data = f.read()[offset:]
    count = len(data) // size if n is None else n
    return [data[i * size:(i + 1) * size] for i in range(count)]


def write(path, prefix, n):
    images = read(prefix + "-images-idx3-ubyte.gz", 16, 784, n)
    labels = read(prefix + "-labels-idx1-ubyte.gz", 8, 1, len(images))
    with open(path, "w") as f:
        f.write("label," + ",".join("px%d" % i for i in range(784)) + "\n")
        for image, label in zip(images, labels):
            f.write(str(label[0]) + "," + ",".join(map(str, image)) + "\n")
    print("wrote %s: %d images" % (path, len(images)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", nargs="?", default="data")
    p.add_argument("--train", type=int, default=None, help="the first N training images (default: all 60,000)")
    p.add_argument("--test", type=int, default=None, help="the first N test images (default: all 10,000)")
    a = p.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    write(os.path.join(a.outdir, "fashion-train.csv"), "train", a.train)
    write(os.path.join(a.outdir, "fashion-test.csv"), "t10k", a.test)


if __name__ == "__main__":
    main()
