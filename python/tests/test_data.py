"""The data writers: the files hold what pstrain's readers take (data.format
"npz", "safetensors", "csv"), byte for byte where the format pins it."""

import ast
import csv
import gzip
import json
import struct
import zipfile

import numpy as np

import pstrain
from helpers import TempDirTest


def sample(n=7, shape=(2, 3), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n,) + shape) * 10.0 ** rng.integers(-6, 6, (n,) + shape)).astype(dtype)
    return x, rng.integers(0, 10, n)


def npy_header(z, member):
    """(shape, fortran_order, dtype) from the member's own bytes: the .npy
    format 1.0 header, magic, version, 2-byte length, a Python dict literal."""
    with z.open(member) as f:
        raw = f.read()
    assert raw[:8] == b"\x93NUMPY\x01\x00", raw[:8]
    n = struct.unpack("<H", raw[8:10])[0]
    h = ast.literal_eval(raw[10:10 + n].decode("latin1"))
    return h["shape"], h["fortran_order"], np.dtype(h["descr"])


class NpzTests(TempDirTest):
    def test_members_are_uncompressed_x_and_y_as_pstrain_reads_them(self):
        x, y = sample()
        path = pstrain.write_npz(self.path("train.npz"), x, y.astype(np.int32))
        with zipfile.ZipFile(path) as z:
            self.assertEqual(sorted(i.filename for i in z.infolist()), ["x.npy", "y.npy"])
            self.assertTrue(all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist()))
            self.assertEqual(npy_header(z, "x.npy"), ((7, 2, 3), False, np.dtype("<f4")))
            self.assertEqual(npy_header(z, "y.npy"), ((7,), False, np.dtype("<i8")))
        with np.load(path) as d:
            np.testing.assert_array_equal(d["x"], x)
            np.testing.assert_array_equal(d["y"], y)

    def test_exact_name_c_order_float32_and_uint8(self):
        x, y = sample(dtype=np.float64)
        fortran = np.asfortranarray(x)
        path = pstrain.write_npz(self.path("no-extension"), fortran, y)  # np.savez alone would add .npz
        self.assertEqual(path, self.path("no-extension"))
        with zipfile.ZipFile(path) as z:
            self.assertEqual(npy_header(z, "x.npy"), ((7, 2, 3), False, np.dtype("<f4")))
        with np.load(path) as d:
            np.testing.assert_array_equal(d["x"], x.astype(np.float32))
        pixels = np.arange(7 * 4, dtype=np.uint8).reshape(7, 1, 2, 2)
        pstrain.write_npz(self.path("u8.npz"), pixels, y)
        with zipfile.ZipFile(self.path("u8.npz")) as z:
            self.assertEqual(npy_header(z, "x.npy"), ((7, 1, 2, 2), False, np.dtype("|u1")))


class SafetensorsTests(TempDirTest):
    def test_header_and_bytes(self):
        features, y = sample()
        pixels = np.arange(42, dtype=np.uint8).reshape(7, 2, 3)
        for x, name in ((features, "F32"), (pixels, "U8")):
            pstrain.write_safetensors(self.path("d.safetensors"), x, y.astype(np.uint8))
            with open(self.path("d.safetensors"), "rb") as f:
                raw = f.read()
            n = struct.unpack("<Q", raw[:8])[0]
            header = json.loads(raw[8:8 + n])
            data = raw[8 + n:]
            self.assertEqual({k: (v["dtype"], v["shape"]) for k, v in header.items() if k != "__metadata__"},
                             {"x": (name, [7, 2, 3]), "y": ("I64", [7])})
            xs, xe = header["x"]["data_offsets"]
            ys, ye = header["y"]["data_offsets"]
            self.assertEqual(data[xs:xe], x.tobytes())  # little-endian on this machine, as pstrain reads it
            self.assertEqual(data[ys:ye], y.astype("<i8").tobytes())


class CsvTests(TempDirTest):
    def read(self, path):
        with open(path, newline="") as f:
            return list(csv.reader(f))

    def test_header_label_column_and_float32_exact(self):
        x, y = sample(n=50)
        pstrain.write_csv(self.path("d.csv"), x, y)
        rows = self.read(self.path("d.csv"))
        self.assertEqual(rows[0], ["label"] + [f"x{j}" for j in range(6)])
        self.assertEqual(len(rows), 51)
        self.assertEqual([int(r[0]) for r in rows[1:]], y.tolist())
        back = np.array([[np.float32(v) for v in r[1:]] for r in rows[1:]], dtype=np.float32)
        np.testing.assert_array_equal(back, x.reshape(50, -1))  # 9 significant digits: the same float32

    def test_names_and_uint8_as_integers(self):
        x = np.array([[0, 255], [7, 8]], dtype=np.uint8)
        pstrain.write_csv(self.path("d.csv"), x, [1, 0], label="class", features=["a", "b"])
        with open(self.path("d.csv")) as f:
            self.assertEqual(f.read(), "class,a,b\n1,0,255\n0,7,8\n")


class RefusalTests(TempDirTest):
    def assertRefused(self, fragment, x, y, writer=pstrain.write_npz):
        with self.assertRaises(pstrain.PstrainError) as c:
            writer(self.path("bad"), x, y)
        self.assertIn(fragment, str(c.exception))

    def test_bad_arrays_are_refused_with_the_array_and_the_problem(self):
        x, y = sample()
        nan = x.copy()
        nan[4, 1, 2] = np.nan
        self.assertRefused("x has a NaN or infinite value in row 4", nan, y)
        self.assertRefused("y has dtype float64", x, y.astype(np.float64))
        self.assertRefused("y has the negative label -1 in row 2", x, np.array([0, 1, -1, 0, 0, 0, 0]))
        self.assertRefused("y has shape [6]", x, y[:6])
        self.assertRefused("x has dtype int32", x.astype(np.int32), y, pstrain.write_safetensors)
        self.assertRefused("x has shape [7]", y.astype(np.float32), y, pstrain.write_csv)
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.write_csv(self.path("d.csv"), x, y, label="x0")
        self.assertIn("differ", str(c.exception))


class IdxTests(TempDirTest):
    """read_idx: Fashion-MNIST's own files as numpy arrays, and refusals."""
    FM = "/usr/share/datasets/fashion-mnist"

    def test_fashion_mnist_files(self):
        x = pstrain.read_idx(f"{self.FM}/t10k-images-idx3-ubyte.gz")
        y = pstrain.read_idx(f"{self.FM}/t10k-labels-idx1-ubyte.gz")
        self.assertEqual((x.shape, x.dtype, y.shape, y.dtype), ((10000, 28, 28), np.uint8, (10000,), np.uint8))
        with gzip.open(f"{self.FM}/t10k-images-idx3-ubyte.gz") as f:
            raw = f.read()
        self.assertEqual(x.tobytes(), raw[16:])
        self.assertEqual(sorted(set(y.tolist())), list(range(10)))

    def test_big_endian_types_and_refusals(self):
        path = self.path("a.idx")
        with open(path, "wb") as f:
            f.write(bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 3) + struct.pack(">6h", -1, 2, 3, 4, 5, 300))
        a = pstrain.read_idx(path)
        self.assertEqual(a.tolist(), [[-1, 2, 3], [4, 5, 300]])
        for body, why in [(bytes([1, 2, 3, 4]), "bad magic number"), (bytes([0, 0, 0x08, 2]) + b"\0\0", "cut short"),
                          (bytes([0, 0, 0x08, 1]) + struct.pack(">I", 5) + b"abc", "announces 5 bytes of data but the file holds 3"),
                          (bytes([0, 0, 0x08, 3]) + struct.pack(">III", 65535, 65535, 65535), "more than this reader takes")]:
            with open(path, "wb") as f:
                f.write(body)
            with self.assertRaises(pstrain.PstrainError) as c:
                pstrain.read_idx(path)
            self.assertIn(why, str(c.exception))
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.read_idx(self.path("missing.idx"))
        self.assertIn("does not exist", str(c.exception))
