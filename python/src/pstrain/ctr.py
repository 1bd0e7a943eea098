"""The click-through-rate workload without torch (docs/python.md, "CTR"):
the [model] section's tables, the hash of raw ids into a table's rows, the
Criteo TSV and libsvm readers with pstrain's transforms, and the two
evaluation figures (AUC, log loss).

A data set is a `CTRData`: labels (0/1 float32), dense features (rows x
dense, float32, already transformed) and per categorical field a bag of
raw ids per row in offsets form, as nn.EmbeddingBag takes them: row r's ids
of field f are ids[f][offsets[f][r]:offsets[f][r + 1]], with weights[f]
None (each id weighs 1) or one float32 per id (libsvm's values).
"""

import math
import os
import re
from dataclasses import dataclass

import numpy as np

from .errors import PstrainError
from .files import open_regular, read_regular

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK = (1 << 64) - 1

CRITEO_DENSE, CRITEO_FIELDS = 13, 26
TABLE_KEYS = {"type": None, "rows": None, "dim": None, "mode": "sum", "hash": False}
# `count = N` in an entry stands for N tables alike (TableSpec.maxCount: at most 4096 in all).
MAX_TABLE_COUNT = 4096


# ---------------------------------------------------------------------------
# Hash
# ---------------------------------------------------------------------------

def splitmix64(x):
    """splitmix64 of a uint64 numpy array (arithmetic mod 2^64)."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def bucket(ids, table, rows):
    """The row of each raw id (uint64) in table `table` of `rows` rows with
    hash = true: splitmix64(id ^ (table * 0x9E3779B97F4A7C15 mod 2^64)) % rows."""
    salt = np.uint64((table * GOLDEN) & MASK)
    with np.errstate(over="ignore"):
        return (splitmix64(np.asarray(ids, dtype=np.uint64) ^ salt) % np.uint64(rows)).astype(np.int64)


# ---------------------------------------------------------------------------
# The [model] section
# ---------------------------------------------------------------------------

def dense_count(model):
    """model.input of a CTR model: the dense features per row (an integer, or [n])."""
    v = model.get("input", 0)
    n = v[0] if isinstance(v, list) and len(v) == 1 else v
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise PstrainError(f"model.input is {v!r}: a CTR model takes [n], the dense features per row "
                           f"(Criteo: [13]; libsvm: [0])")
    return n


def parse_tables(model):
    """model.tables with every key, defaults filled in, checked; an entry
    with count = N gives N tables alike, as pstrain reads it. An entry that
    names `fields` (the click log's categorical fields it embeds, 0 first)
    keeps them; then every entry must, and a field feeds one table."""
    tables = model.get("tables")
    if not isinstance(tables, list) or not tables:
        raise PstrainError("model.tables must be a non-empty array of tables "
                           "({ type = \"embedding_bag\", rows = ..., dim = ... })")
    out = []
    for i, t in enumerate(tables):
        where = f"model.tables[{i}]"
        if not isinstance(t, dict):
            raise PstrainError(f"{where} is {t!r}: each table is {{ type = \"embedding_bag\", rows = ..., dim = ... }}")
        for k in t:
            if k not in TABLE_KEYS and k not in ("count", "fields"):
                raise PstrainError(f"{where} has key '{k}'; a table takes {', '.join(TABLE_KEYS)}, count and fields")
        count = t.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_TABLE_COUNT:
            raise PstrainError(f"{where} has count = {count!r}: it takes an integer in [1, {MAX_TABLE_COUNT}]: "
                               f"that many fields get a table alike")
        e = {k: t.get(k, d) for k, d in TABLE_KEYS.items()}
        if e["type"] != "embedding_bag":
            raise PstrainError(f"{where} has type {e['type']!r}: the only table type is \"embedding_bag\"")
        for k in ("rows", "dim"):
            if isinstance(e[k], bool) or not isinstance(e[k], int) or e[k] < 1:
                raise PstrainError(f"{where} has {k} = {e[k]!r}: it must be a positive integer")
        if e["mode"] not in ("sum", "mean"):
            raise PstrainError(f"{where} has mode = {e['mode']!r}: it is \"sum\" or \"mean\"")
        if not isinstance(e["hash"], bool):
            raise PstrainError(f"{where} has hash = {e['hash']!r}: it is true or false")
        if "fields" in t:
            e["fields"] = _fields(t, where)
        out.extend(dict(e) for _ in range(count))
        if len(out) > MAX_TABLE_COUNT:
            raise PstrainError(f"model.tables has more than {MAX_TABLE_COUNT} tables")
    named = [i for i, e in enumerate(out) if "fields" in e]
    if named and len(named) != len(out):
        first = next(i for i, e in enumerate(out) if "fields" not in e)
        raise PstrainError(f"model.tables[{first}] has no fields while other tables name theirs; "
                           f"name the fields of every table, or of none (table i embeds field i)")
    owner = {}
    for i, e in enumerate(out):
        for f in e.get("fields", ()):
            if f in owner:
                raise PstrainError(f"model.tables[{i}] names field {f}, which model.tables[{owner[f]}] embeds already; "
                                   f"a field feeds one table")
            owner[f] = i
    return out


def _fields(t, where):
    fields = t["fields"]
    if "count" in t:
        raise PstrainError(f"{where} has both count and fields; fields names the one table's fields, so drop count")
    if (not isinstance(fields, list) or not fields
            or any(isinstance(f, bool) or not isinstance(f, int) or not 0 <= f < MAX_TABLE_COUNT for f in fields)):
        raise PstrainError(f"{where} has fields = {fields!r}: it takes an array of field numbers such as [0, 2, 5] "
                           f"(0 is the first categorical field: Criteo's C1), each in [0, {MAX_TABLE_COUNT - 1}]")
    if len(set(fields)) != len(fields):
        raise PstrainError(f"{where} names a field twice in fields = {fields!r}")
    return list(fields)


def features_of(tables):
    """The bags of a row in the model's input, in order, as (field, table)
    pairs: each table's `fields` in turn, or table i on field i."""
    return [(f, t) for t, e in enumerate(tables) for f in e.get("fields", [t])]


def interaction_of(model, tables):
    kind = model.get("interaction", "none")
    if kind not in ("none", "fm"):
        raise PstrainError(f"model.interaction is {kind!r}: it is \"none\" or \"fm\"")
    if kind == "fm" and len({t["dim"] for t in tables}) != 1:
        raise PstrainError("model.interaction = \"fm\" needs every table of one dim; "
                           f"these have {sorted({t['dim'] for t in tables})}")
    return kind


# ---------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------

@dataclass
class CTRData:
    labels: np.ndarray          # (n,) float32, 0 or 1
    dense: np.ndarray           # (n, dense) float32
    ids: list                   # per field: uint64 raw ids
    offsets: list               # per field: (n + 1,) int64
    weights: list               # per field: None or float32 per id
    source: str = ""

    def __len__(self):
        return len(self.labels)

    def rows_of(self, tables):
        """Per field the rows of its ids (int64) in the table that embeds it
        (table i embeds field i, or the fields its entry names): the hash of
        each raw id when the table hashes, else the raw id, which must be <
        rows. A field no table embeds gets an empty array (its bags are not
        read)."""
        if not any("fields" in t for t in tables) and len(tables) != len(self.ids):
            raise PstrainError(f"{self.source} has {len(self.ids)} categorical field(s), "
                               f"the model {len(tables)} table(s): table i embeds field i "
                               f"(or name the fields each table embeds: fields = [0, 1])")
        out = [np.zeros(0, dtype=np.int64) for _ in self.ids]
        for f, t in features_of(tables):
            if f >= len(self.ids):
                raise PstrainError(f"model.tables[{t}] names field {f} but {self.source} has {len(self.ids)} "
                                   f"categorical field(s), numbered 0 to {len(self.ids) - 1}")
            e, ids = tables[t], self.ids[f]
            if e["hash"]:
                out[f] = bucket(ids, t, e["rows"])
                continue
            if len(ids) and int(ids.max()) >= e["rows"]:
                raise PstrainError(f"{self.source}: field {f} has id {int(ids.max())}, not below table {t}'s "
                                   f"rows = {e['rows']}: set hash = true on the table, or more rows")
            out[f] = ids.astype(np.int64)
        return out


def gather(ids, offsets, weights, index):
    """(ids, offsets of len(index) bags, weights) of rows `index` of one field."""
    starts, ends = offsets[index], offsets[np.asarray(index) + 1]
    lens = ends - starts
    new = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lens, out=new[1:])
    pos = np.repeat(starts - new[:-1], lens) + np.arange(new[-1], dtype=np.int64)
    return ids[pos], new[:-1], None if weights is None else weights[pos]


def read_ctr(path, fmt):
    """The data set in `path`, data.format `fmt` ("criteo" or "libsvm")."""
    if fmt == "criteo":
        return read_criteo(path)
    if fmt == "libsvm":
        return read_libsvm(path)
    raise PstrainError(f"data.format is {fmt!r}: the CTR formats are \"criteo\" and \"libsvm\"")


# Criteo: label, I1..I13, C1..C26, tab-separated; the whole file is parsed
# with numpy on its bytes, a chunk of whole lines at a time.
CRITEO_COLUMNS = 1 + CRITEO_DENSE + CRITEO_FIELDS
CHUNK = 1 << 21


def _column_name(c):
    return "label" if c == 0 else f"I{c}" if c <= CRITEO_DENSE else f"C{c - CRITEO_DENSE}"


def read_criteo(path):
    """A Criteo TSV file: dense feature j = log1p(max(I_j, 0)) (empty: 0) as
    float32; field f's bag: empty for an empty C_f, else its hex value as
    one uint64 id. Read CHUNK bytes of whole lines at a time."""
    path = os.fspath(path)
    parts, line, carry = [], 1, b""
    f = open_regular(path)[0]  # as pstrain: a FIFO or a device is refused, not read
    try:
        with f:
            while True:
                block = f.read(CHUNK)
                data = carry + block
                cut = data.rfind(b"\n") + 1 if block else len(data)
                carry = data[cut:]
                if cut:
                    part, lines = _criteo_chunk(np.frombuffer(data[:cut], dtype=np.uint8), path, line)
                    parts.append(part)
                    line += lines
                if not block:
                    break
    except OSError as e:
        raise PstrainError(f"cannot read {path}: {e.strerror}") from e
    labels = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.float32)
    if not len(labels):
        raise PstrainError(f"{path} holds no rows")
    dense = np.concatenate([p[1] for p in parts])
    cats = np.concatenate([p[2] for p in parts])
    present = np.concatenate([p[3] for p in parts])
    ids, offsets = [], []
    for f in range(CRITEO_FIELDS):
        o = np.zeros(len(labels) + 1, dtype=np.int64)
        np.cumsum(present[:, f], out=o[1:])
        ids.append(cats[present[:, f], f])
        offsets.append(o)
    return CTRData(labels, dense, ids, offsets, [None] * CRITEO_FIELDS, path)


def _criteo_chunk(buf, path, first_line):
    """(labels, dense, ids (n, 26) uint64, present (n, 26) bool) of whole lines
    in `buf`, and the number of lines it spans (blank ones included)."""
    if len(buf) and buf[-1] != 10:
        buf = np.concatenate([buf, np.array([10], dtype=np.uint8)])
    line_ends = np.flatnonzero(buf == 10)
    n_lines = len(line_ends)
    if (buf == 13).any():  # CRLF line ends: drop the CR before each LF
        keep = np.ones(len(buf), dtype=bool)
        cr = np.flatnonzero(buf == 13)
        keep[cr[(cr + 1 < len(buf)) & (buf[np.minimum(cr + 1, len(buf) - 1)] == 10)]] = False
        buf = buf[keep]
        line_ends = np.flatnonzero(buf == 10)
    line_starts = np.concatenate([[0], line_ends[:-1] + 1])
    blank = line_ends == line_starts
    if blank.any():  # blank lines are skipped
        keep = np.ones(len(buf), dtype=bool)
        keep[line_ends[blank]] = False
        line_no = first_line + np.flatnonzero(~blank)
        buf = buf[keep]
    else:
        line_no = first_line + np.arange(n_lines)
    sep = (buf == 9) | (buf == 10)
    ends = np.flatnonzero(sep)
    nl = np.flatnonzero(buf[ends] == 10)
    counts = np.diff(np.concatenate([[-1], nl]))
    bad = np.flatnonzero(counts != CRITEO_COLUMNS)
    if len(bad):
        r = bad[0]
        raise PstrainError(f"{path}: line {line_no[r]} has {counts[r]} tab-separated fields; a Criteo row has "
                           f"{CRITEO_COLUMNS} (label, I1..I13, C1..C26; empty fields still need their tabs)")
    n = len(nl)
    ends = ends.reshape(n, CRITEO_COLUMNS)
    starts = np.empty_like(ends)
    starts[:, 1:] = ends[:, :-1] + 1
    starts[:, 0] = np.concatenate([[0], ends[:-1, -1] + 1]) if n else []
    lens = ends - starts
    labels = _labels(buf, starts[:, 0], lens[:, 0], path, line_no)
    dense = _integers(buf, starts[:, 1:1 + CRITEO_DENSE], lens[:, 1:1 + CRITEO_DENSE], path, line_no)
    ids = _hex(buf, starts[:, 1 + CRITEO_DENSE:], lens[:, 1 + CRITEO_DENSE:], path, line_no)
    return (labels, dense, ids, lens[:, 1 + CRITEO_DENSE:] > 0), n_lines


def _cell_bytes(buf, starts, lens):
    """The bytes of the cells (row-major), concatenated; each byte's distance
    from its cell's last byte; each cell's offset into them (cells + 1)."""
    s, n = starts.reshape(-1), lens.reshape(-1)
    off = np.zeros(len(s) + 1, dtype=np.int64)
    np.cumsum(n, out=off[1:])
    pos = np.repeat(s - off[:-1], n) + np.arange(off[-1], dtype=np.int64)
    return buf[pos], np.repeat(s + n - 1, n) - pos, off


def _first_bad_cell(off, bad_bytes, bad_cells):
    """The first cell (row-major) that has a bad byte or is bad as a whole."""
    c = int(np.flatnonzero(bad_cells.reshape(-1))[0]) if bad_cells.any() else len(off)
    if bad_bytes.any():
        c = min(c, int(np.searchsorted(off, np.flatnonzero(bad_bytes)[0], side="right") - 1))
    return c


def _cell_sums(contrib, off):
    """The sum of `contrib` over each cell's bytes, by differences of a
    running sum (exact mod 2^64, so exact for any value that fits)."""
    with np.errstate(over="ignore"):
        run = np.concatenate([np.zeros(1, dtype=contrib.dtype), np.cumsum(contrib, dtype=contrib.dtype)])
        return run[off[1:]] - run[off[:-1]]


def _labels(buf, starts, lens, path, line_no):
    ok = (lens == 1) & ((buf[starts] == 48) | (buf[starts] == 49))
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        text = bytes(buf[starts[r]:starts[r] + lens[r]]).decode(errors="replace")
        raise PstrainError(f"{path}: line {line_no[r]}, field label: {text!r} is not 0 or 1")
    return (buf[starts] - 48).astype(np.float32)


def _integers(buf, starts, lens, path, line_no):
    """log1p(max(I, 0)) as float32 (0 for an empty field) of the integer
    columns. An integer is what pstrain takes (Criteo.integer): an optional
    '-' or '+', then ASCII digits (any number of leading zeros), within
    Int64; cells of more than 18 digits are checked and parsed one by one."""
    b, from_end, off = _cell_bytes(buf, starts, lens)
    digit = b.astype(np.int64) - 48
    is_digit = (digit >= 0) & (digit <= 9)
    lead = np.zeros(len(b), dtype=bool)
    lead[off[:-1][lens.reshape(-1) > 0]] = True
    sign = lead & ((b == 45) | (b == 43))
    signed = (lens > 0) & ((buf[starts] == 45) | (buf[starts] == 43))
    negative = (lens > 0) & (buf[starts] == 45)
    bad = (_cell_sums((~is_digit & ~sign).astype(np.int64), off).reshape(lens.shape) > 0) | (signed & (lens == 1))
    value = _cell_sums(np.where(is_digit, digit, 0) * _POW10[np.minimum(from_end, 18)], off).reshape(lens.shape)
    value = np.where(negative, -value, value)
    for r, j in zip(*np.nonzero((lens - signed > 18) & ~bad)):  # too long for the sums: exact, on Python ints
        cell = bytes(buf[starts[r, j] + signed[r, j]:starts[r, j] + lens[r, j]]).lstrip(b"0")  # ASCII digits, checked above
        v = int(cell or b"0") * (-1 if negative[r, j] else 1) if len(cell) <= 19 else 1 << 64  # (int() stops at 4,300 digits)
        if -(1 << 63) <= v < (1 << 63):
            value[r, j] = v
        else:
            bad[r, j] = True
    if bad.any():
        r, j = divmod(int(np.flatnonzero(bad.reshape(-1))[0]), CRITEO_DENSE)
        text = bytes(buf[starts[r, j]:starts[r, j] + lens[r, j]]).decode(errors="replace")
        raise PstrainError(f"{path}: line {line_no[r]}, field I{j + 1}: {text!r} is not an integer from -2^63 to 2^63 - 1 "
                           f"(ASCII digits, an optional leading '-' or '+')")
    return np.log1p(np.maximum(value, 0).astype(np.float64)).astype(np.float32)


_POW10 = np.array([10 ** k for k in range(19)], dtype=np.int64)
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _c in b"0123456789":
    _NIBBLE[_c] = _c - 48
for _c in b"abcdef":
    _NIBBLE[_c] = _c - 87
    _NIBBLE[_c - 32] = _c - 87


def _hex(buf, starts, lens, path, line_no):
    """The hex ids (uint64) of the categorical columns (0 where empty)."""
    b, from_end, off = _cell_bytes(buf, starts, lens)
    nib = _NIBBLE[b]
    bad = nib == 255
    if bad.any() or (lens > 16).any():
        r, j = divmod(_first_bad_cell(off, bad, lens > 16), CRITEO_FIELDS)
        text = bytes(buf[starts[r, j]:starts[r, j] + lens[r, j]]).decode(errors="replace")
        raise PstrainError(f"{path}: line {line_no[r]}, field C{j + 1}: {text!r} is not a hexadecimal id "
                           f"(up to 16 digits 0-9, a-f)")
    contrib = nib.astype(np.uint64) << (from_end.astype(np.uint64) * np.uint64(4))
    return _cell_sums(contrib, off).reshape(lens.shape)


def read_libsvm(path):
    """A libsvm/svmlight file: label 0/1 (or -1/+1), then idx:val pairs; one
    categorical field whose bag is the row's indices weighted by the values.
    The grammar is pstrain's (LibSVM.swift), on bytes: lines end at "\n"
    (a "\r" before it is dropped), tokens are separated by spaces and tabs,
    '#' starts a comment; idx is ASCII digits below 2^64, a number is
    strtod's syntax in the C locale, and a value must be finite as FP32; a
    line holds at most 65,536 pairs."""
    path = os.fspath(path)
    data = read_regular(path, lambda size: None)  # as pstrain: a FIFO or a device is refused, not read
    labels, ids, weights, offsets = [], [], [], [0]
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()  # what follows the last "\n" is a line only when it is not empty
    for no, line in enumerate(lines, 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        # Only spaces and tabs separate: bytes.split() and str.split() also cut at \v, \f, \r (and \x1c, \x85...).
        tokens = [t for t in line.split(b"#", 1)[0].replace(b"\t", b" ").split(b" ") if t]
        if not tokens:
            continue
        where = f"{path}: line {no}"
        labels.append(_libsvm_label(tokens[0], where))
        for k, t in enumerate(tokens[1:], 1):
            if k > MAX_PAIRS:
                raise PstrainError(f"{where}, pair {k}: the line holds more than {MAX_PAIRS} index:value pairs (pstrain's "
                                   f"bound on the rows one sample asks for): split the features over several fields or rows")
            p = _shown(t)
            idx, colon, val = t.partition(b":")
            if not colon:
                raise PstrainError(f"{where}, pair {k}: {p!r} is not idx:value (no ':')")
            i = _index(idx)
            if i is None:
                raise PstrainError(f"{where}, pair {k}: {p!r} is not idx:value with idx a non-negative integer "
                                   f"below 2^64 (ASCII digits)")
            v = _strtod(val)
            if v is None:
                raise PstrainError(f"{where}, pair {k}: {p!r} has a value that is not a number (1, -0.5, 2.5e-3, 0x1p-4)")
            if not abs(v) < FP32_OVERFLOW:  # NaN fails this too
                raise PstrainError(f"{where}, pair {k}: {p!r} has a value that is not a finite number as FP32 "
                                   f"(pstrain keeps weights in FP32; at most 3.4028235e38 in magnitude)")
            ids.append(i)
            weights.append(v)
        offsets.append(len(ids))
    if not labels:
        raise PstrainError(f"{path} holds no rows")
    n = len(labels)
    return CTRData(np.array(labels, dtype=np.float32), np.zeros((n, 0), dtype=np.float32),
                   [np.array(ids, dtype=np.uint64)], [np.array(offsets, dtype=np.int64)],
                   [np.array(weights, dtype=np.float64).astype(np.float32)], path)


# The most index:value pairs a libsvm line may hold (LibSVM.maxPairsPerRow).
MAX_PAIRS = 1 << 16


def _libsvm_label(token, where):
    v = _strtod(token)
    if v not in (0.0, 1.0, -1.0):  # None and NaN are not
        raise PstrainError(f"{where}: label {_shown(token)!r} is not 0/1 or -1/+1")
    return 1.0 if v == 1.0 else 0.0


def _shown(token):
    """A token for a message: its first 40 bytes."""
    return token[:40].decode("utf-8", errors="replace") + ("..." if len(token) > 40 else "")


# The smallest double that becomes an infinity as FP32 (round to nearest
# even): FLT_MAX + half its ulp, 2^128 - 2^103. A value is checked in the
# precision pstrain uses it in: 1e39 is finite as a double, not as FP32.
FP32_OVERFLOW = float(2 ** 128 - 2 ** 103)

# strtod's syntax in the C locale, matched against the whole token, as
# pstrain parses a number (LibSVM.number). Python's float() differs: it
# takes "1_0", non-ASCII digits ("١", "١٠") and surrounding whitespace,
# and not hexadecimal ("0x1p-3") or "nan(...)".
_STRTOD = re.compile(rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                     rb"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
                     rb"|(?i:inf|infinity)|(?i:nan)(?:\([0-9A-Za-z_]*\))?)")


def _strtod(token):
    """The token (bytes) as a double, as strtod reads it whole; None when it is not one."""
    if not _STRTOD.fullmatch(token):
        return None
    text = token.decode("ascii")
    if "x" in text or "X" in text:
        try:
            return float.fromhex(text)
        except OverflowError:  # strtod gives an infinity
            return -math.inf if text.startswith("-") else math.inf
    if "(" in text:
        return math.nan  # nan(chars): float() takes only "nan"
    return float(text)  # digits, "inf", "infinity", "nan": the same values as strtod (both round correctly)


def _index(token):
    """1 or more ASCII digits as an int below 2^64, else None (int() also takes "1_0", "١" and spaces)."""
    if not token or not token.isdigit():  # bytes.isdigit: ASCII digits only
        return None
    token = token.lstrip(b"0") or b"0"
    v = int(token) if len(token) <= 20 else 1 << 64  # int() stops at 4,300 digits; leading zeros may be more
    return v if v <= MASK else None


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------

def auc(labels, scores):
    """The area under the ROC curve: the probability that a random positive
    scores above a random negative, ties counting one half (rank-based:
    tied scores share their average rank). NaN without both classes."""
    y = np.asarray(labels).reshape(-1) > 0.5
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    pos, n = int(y.sum()), len(y)
    if pos == 0 or pos == n:
        return math.nan
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    avg_rank = first + (counts + 1) / 2.0  # 1-based ranks
    r = avg_rank[inverse]
    return float((r[y].sum() - pos * (pos + 1) / 2.0) / (pos * (n - pos)))


def log_loss(labels, logits):
    """Mean binary cross-entropy of the predicted probabilities sigmoid(logit),
    computed from the logits in float64 (softplus(z) - y z)."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))
