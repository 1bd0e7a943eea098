import XCTest
@testable import PSCore

/// What the hand-written TOML reader's Config writes, pinned before that
/// reader is replaced: run.toml and checkpoint manifests embed the canonical
/// form, ranks compare its XXH64, and `pstrain ckpt export` writes
/// model.layers into the safetensors metadata (whose SHA-256
/// scripts/digest-matrix compares).
final class ConfigPinTests: XCTestCase {
    func testCanonicalFormAndHash() throws {
        XCTAssertEqual(Config().canonicalTOML, Self.defaultCanonical)
        XCTAssertEqual(String(Config().hash, radix: 16), "f70e0fad735054c3")
        var c = Config()
        for o in Self.overrides { try c.apply(override: o) }
        XCTAssertEqual(c.canonicalTOML, Self.overriddenCanonical)
        XCTAssertEqual(String(c.hash, radix: 16), "5f7df7927cd24543")
    }

    func testExportedLayersString() throws {
        XCTAssertEqual(Config().values["model.layers"]!.description,
                       #"[{ type = "dense", units = 256 }, { type = "relu" }, { type = "dense", units = 128 }, { type = "relu" }, { type = "dense", units = 10 }]"#)
        var c = Config()
        for o in Self.overrides { try c.apply(override: o) }
        XCTAssertEqual(c.values["model.layers"]!.description, #"[{ type = "dense", units = 1000 }, { type = "relu" }, { type = "dense", units = 10 }]"#)
    }

    static let overrides = ["train.lr=0.2", "data.kind=synthetic", "train.seed=-3", "train.precision=\"fp16\"", "compression.topk=0.01",
                            "debug.die_at_steps=3, 5", "debug.die_in_checkpoint=\"4:after-files\"", "data.dir=/tmp/a\"b\\c é",
                            "model.layers=[{type=\"dense\", units=1000}, {type=\"relu\"}, {type=\"dense\", units=10}]",
                            "scaler.initial=1024", "run.timeout_seconds=1e-3", "checkpoint.every_seconds=2.5", "compression.link_gbps=100",
                            "run.poll=spin", "compression.shuffle=false", "scaler.backoff_factor=0.25", "train.momentum=0.0", "train.weight_decay=1e-5"]

    /// Config().canonicalTOML as the hand-written reader's Config wrote it.
    static let defaultCanonical = #"""
[model]
input = 784
layers = [
  { type = "dense", units = 256 },
  { type = "relu" },
  { type = "dense", units = 128 },
  { type = "relu" },
  { type = "dense", units = 10 },
]

[data]
kind = "fashion-mnist"
dir = "/usr/share/datasets/fashion-mnist"
synthetic_train = 4096
synthetic_test = 1024

[train]
epochs = 10
max_steps = 0
batch_size = 128
lr = 0.05
lr_schedule = "cosine"
momentum = 0.9
weight_decay = 0.0001
seed = 1
precision = "fp32"

[scaler]
initial = 65536.0
growth_factor = 2.0
backoff_factor = 0.5
growth_interval = 2000
hysteresis = 2
min = 1.0
max = 16777216.0
max_skips_at_min = 50

[compression]
topk = 0.0
shuffle = true
zstd_level = 1
adaptive = true
link_gbps = 10.0

[checkpoint]
every_steps = 0
every_seconds = 0.0
at_end = true
keep = 3

[debug]
die_at_steps = ""
slow_worker = -1
slow_ms = 0.0
die_in_checkpoint = ""
die_worker = 0
overflow_step = -1
overflow_steps = 1
overflow_worker = 0
corrupt_step = -1
digest_every_step = false

[run]
timeout_seconds = 120.0
blas_threads = 1
chunk_elements = 65536
poll = "yield"
pin_workers = true
progress_seconds = 10.0
workers = 0
servers = 0

"""#

    /// The same with `overrides` applied, as the old code wrote it.
    static let overriddenCanonical = #"""
[model]
input = 784
layers = [
  { type = "dense", units = 1000 },
  { type = "relu" },
  { type = "dense", units = 10 },
]

[data]
kind = "synthetic"
dir = "/tmp/a\"b\\c é"
synthetic_train = 4096
synthetic_test = 1024

[train]
epochs = 10
max_steps = 0
batch_size = 128
lr = 0.2
lr_schedule = "cosine"
momentum = 0.0
weight_decay = 1e-05
seed = -3
precision = "fp16"

[scaler]
initial = 1024.0
growth_factor = 2.0
backoff_factor = 0.25
growth_interval = 2000
hysteresis = 2
min = 1.0
max = 16777216.0
max_skips_at_min = 50

[compression]
topk = 0.01
shuffle = false
zstd_level = 1
adaptive = true
link_gbps = 100.0

[checkpoint]
every_steps = 0
every_seconds = 2.5
at_end = true
keep = 3

[debug]
die_at_steps = "3, 5"
slow_worker = -1
slow_ms = 0.0
die_in_checkpoint = "4:after-files"
die_worker = 0
overflow_step = -1
overflow_steps = 1
overflow_worker = 0
corrupt_step = -1
digest_every_step = false

[run]
timeout_seconds = 0.001
blas_threads = 1
chunk_elements = 65536
poll = "spin"
pin_workers = true
progress_seconds = 10.0
workers = 0
servers = 0

"""#
}
