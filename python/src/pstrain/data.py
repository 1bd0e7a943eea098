"""Writing data sets in the formats pstrain reads (data.format, docs/config.md):

  npz          a NumPy archive (np.savez: uncompressed members) with arrays
               `x` (N, ...) float32 or uint8 and `y` (N,) integer labels
  safetensors  tensors `x` and `y`, the same arrays
  csv          a header row; the label column (data.label) and the feature columns

Every writer checks the arrays first and writes them as pstrain reads them:
C order, little-endian, `x` as float32 (any float input) or uint8, `y` as
int64 class indices from 0, no NaN or infinity in `x`.
"""

import os

import numpy as np

from .errors import PstrainError


def checked_arrays(x, y):
    """(x, y) as pstrain reads them, or an error naming the array and the problem."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2:
        raise PstrainError(f"x has shape {list(x.shape)}: it must be (samples, features...) with at least 2 dimensions")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise PstrainError(f"y has shape {list(y.shape)}: it must be ({x.shape[0]},), one label per row of x")
    if x.dtype.kind == "f":
        x = x.astype("<f4", copy=False)
        bad = ~np.isfinite(x)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise PstrainError(f"x has a NaN or infinite value in row {row}: pstrain refuses such features")
    elif x.dtype == np.uint8:
        pass
    else:
        raise PstrainError(f"x has dtype {x.dtype}: pstrain reads float32 (any float is converted) or uint8")
    if y.dtype.kind not in "iu":
        raise PstrainError(f"y has dtype {y.dtype}: labels are integers (class indices from 0)")
    if y.size and y.min() < 0:
        raise PstrainError(f"y has the negative label {int(y.min())} in row {int(np.argmin(y))}: labels are class indices from 0")
    return np.ascontiguousarray(x), np.ascontiguousarray(y.astype("<i8", copy=False))


def write_npz(path, x, y):
    """Writes `x` and `y` into the NumPy archive `path` (exactly that name:
    np.savez would add .npz) with uncompressed members x.npy and y.npy."""
    x, y = checked_arrays(x, y)
    with open(path, "wb") as f:
        np.savez(f, x=x, y=y)
    return os.fspath(path)


def write_safetensors(path, x, y):
    """Writes `x` and `y` as the tensors of the safetensors file `path`."""
    from safetensors.numpy import save_file
    x, y = checked_arrays(x, y)
    save_file({"x": x, "y": y}, os.fspath(path))
    return os.fspath(path)


def write_csv(path, x, y, label="label", features=None):
    """Writes a CSV file: a header row (`label`, then the feature columns,
    named by `features` or x0, x1, ...) and one row per sample, its label
    then its features (x flattened per row). Floats are written with 9
    significant digits, which read back to the same float32."""
    x, y = checked_arrays(x, y)
    x = x.reshape(x.shape[0], -1)
    names = list(features) if features is not None else [f"x{j}" for j in range(x.shape[1])]
    if len(names) != x.shape[1]:
        raise PstrainError(f"features names {len(names)} columns, x has {x.shape[1]} features per row")
    for n in [label] + names:
        if not isinstance(n, str) or not n or any(c in n for c in ',"\r\n'):
            raise PstrainError(f"column name {n!r} must be a non-empty string without commas, quotes or line breaks")
    if len(set([label] + names)) != len(names) + 1:
        raise PstrainError(f"column names must differ from each other and from the label column {label!r}")
    row = ",".join(["%d"] + ["%d" if x.dtype == np.uint8 else "%.9g"] * x.shape[1]) + "\n"
    with open(path, "w", newline="") as f:
        f.write(",".join([label] + names) + "\n")
        for lab, feats in zip(y.tolist(), x.tolist()):
            f.write(row % (lab, *feats))
    return os.fspath(path)



# IDX element types (the third byte of the magic number) and their numpy dtypes, big-endian.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """The array of an IDX file (MNIST's and Fashion-MNIST's format), gzipped
    (.gz) or not: `read_idx(".../train-images-idx3-ubyte.gz")` gives
    (60000, 28, 28) uint8, the labels file (60000,) uint8. The header is
    checked against the file's size before anything is allocated."""
    import gzip
    from .files import open_regular
    path = os.fspath(path)
    raw, _ = open_regular(path, missing=f"cannot read {path}: it does not exist")
    with raw:
        f = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
        try:
            head = f.read(4)
            if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_TYPES or head[3] == 0:
                raise PstrainError(f"{path}: not an IDX file (bad magic number {head.hex()})")
            header = f.read(4 * head[3])
            if len(header) != 4 * head[3]:
                raise PstrainError(f"{path}: the IDX header is cut short")
            dims = np.frombuffer(header, dtype=">u4")
            dtype = np.dtype(IDX_TYPES[head[2]])
            want = int(np.prod(dims, dtype=np.uint64)) * dtype.itemsize
            if want > 1 << 34:
                raise PstrainError(f"{path}: the IDX header announces {want} bytes of data, more than this reader takes (16 GiB)")
            body = f.read(want + 1)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise PstrainError(f"{path}: cannot read it as IDX: {e}") from e
    if len(body) != want:
        raise PstrainError(f"{path}: the IDX header announces {want} bytes of data but the file holds {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(tuple(int(d) for d in dims)).astype(dtype.newbyteorder("="))
