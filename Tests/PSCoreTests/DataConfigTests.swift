import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
import PSTestSupport

/// The [data] keys of the formats, the validation results on the wire and
/// in the log, and the standardisation numbers in a checkpoint.
final class DataConfigTests: XCTestCase {
    func testDataKeysAreReadAndChecked() throws {
        let c = try Config.parse("""
            [data]
            format = "npz"
            train = "sets/train.npz"
            test = "/abs/test.npz"
            normalize = "standardize"
            validation = 0.1
            classes = 12
            """, source: "d.toml")
        XCTAssertEqual(c.data.format, .npz)
        XCTAssertEqual(c.data.normalizeInEffect, .standardize)
        let r = c.data.request(cacheDir: "/run/data-cache")
        XCTAssertEqual([r.train, r.test, r.cacheDir], ["sets/train.npz", "/abs/test.npz", "/run/data-cache"])
        XCTAssertEqual(r.validation, 0.1)
        XCTAssertEqual(r.classes, 12)
        var moved = c
        moved.resolveDataPaths(against: "/home/u")
        XCTAssertEqual([moved.data.train, moved.data.test, moved.data.dir], ["/home/u/sets/train.npz", "/abs/test.npz", "/usr/share/datasets/fashion-mnist"])
        XCTAssertEqual(Config().data.normalizeInEffect, .scalar, "idx: today's fixed normalisation")
        func message(_ text: String) -> String { TestFiles.message { _ = try Config.parse(text, source: "d.toml") } }
        // Keys that depend on each other are checked when the files are opened (overrides apply one at a time).
        var csv = try Config.parse("[data]\nformat = \"csv\"\ntest = \"t.csv\"\n", source: "d.toml")
        var m = TestFiles.message { _ = try DataSplit.load(csv.data, features: 1) }
        XCTAssertTrue(m.contains("data.train") && m.contains("is empty") && m.contains("\"csv\" needs the file"), m)
        try csv.apply(override: "data.train=a.csv")
        try csv.apply(override: "data.label=\"\"")
        m = TestFiles.message { _ = try DataSplit.load(csv.data, features: 1) }
        XCTAssertTrue(m.contains("data.label is empty"), m)
        m = message("[data]\nvalidation = 1.0\n")
        XCTAssertTrue(m.contains("data.validation") && m.contains("[0, 1)"), m)
        m = message("[data]\nclasses = 300\n")
        XCTAssertTrue(m.contains("data.classes") && m.contains("[0, 256]"), m)
        m = message("[data]\nnormalize = \"zscore\"\n")
        XCTAssertTrue(m.contains("\"auto\", \"none\", \"scalar\" or \"standardize\""), m)
        m = message("[data]\nformat = \"parquet\"\n")
        XCTAssertTrue(m.contains("\"idx\", \"npz\", \"csv\", \"safetensors\", \"criteo\" or \"libsvm\""), m)
        m = message("[data]\nstd = 0\n")
        XCTAssertTrue(m.contains("data.std"), m)
    }

    /// examples/fashion-csv.toml is the default model on CSV files, standardised, with validation.
    func testCSVExampleReads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let c = try Config.load(path: root.appendingPathComponent("examples/fashion-csv.toml").path)
        XCTAssertEqual(c.model, Config().model)
        XCTAssertEqual(c.train, Config().train)
        XCTAssertEqual([c.data.format.rawValue, c.data.train, c.data.test, c.data.label], ["csv", "data/fashion-train.csv", "data/fashion-test.csv", "label"])
        XCTAssertEqual(c.data.normalizeInEffect, .standardize)
        XCTAssertEqual(c.data.validation, 0.1)
    }

    /// The eval message carries the validation sums; impossible counts are refused.
    func testEvalResultCarriesValidation() throws {
        let e = EvalResult(lossSum: 3.5, correct: 90, count: 100, validationLossSum: 1.25, validationCorrect: 7, validationCount: 10)
        let b = EvalResult.buffer()
        e.seal(into: b, step: 4)
        XCTAssertEqual(try EvalResult.open(b, length: b.length, step: 4, sender: "w"), e)
        let p = UnsafeMutableRawPointer.allocate(byteCount: EvalResult.payloadBytes, alignment: 8)
        defer { p.deallocate() }
        e.encode(into: p)
        p.storeF64(11, at: 4)   // 11 correct of 10
        XCTAssertTrue(TestFiles.message { _ = try EvalResult.decode(from: p) }.contains("validation result"))
    }

    /// An eval record with validation writes its three fields after the
    /// test fields; without, the line is what it always was.
    func testEvalRecordWritesValidationOnlyWhenThereIsSome() throws {
        let dir = TestFiles.tempDir("eval-record")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try RunLog(path: dir + "/s.jsonl", fixed: RankStamp(run: "r", rank: 0, role: "server", index: 0))
        log.clock = { 1 }
        let plain = log.line(EvalRecord(step: 5, epoch: 1, testAccuracy: 0.5, testLoss: 1, testSamples: 10))
        XCTAssertEqual(plain, #"{"v":1,"event":"eval","t":1.0,"run":"r","rank":0,"role":"server","index":0,"step":5,"epoch":1,"test_accuracy":0.5,"test_loss":1.0,"test_samples":10}"# + "\n")
        let with = log.line(EvalRecord(step: 5, epoch: 1, testAccuracy: 0.5, testLoss: 1, testSamples: 10,
                                       validationAccuracy: 0.75, validationLoss: .nan, validationSamples: 4))
        XCTAssertTrue(with.hasSuffix(#""test_samples":10,"validation_accuracy":0.75,"validation_loss":null,"validation_samples":4}"# + "\n"), with)
        let back = LogFile(data: Data(with.utf8), source: .server).records(EvalRecord.self).first
        XCTAssertEqual(back?.validationAccuracy, 0.75)
        XCTAssertEqual(back?.validationSamples, 4)
    }

    /// Worker 0's checkpoint file holds data.mean and data.std (FP32, the
    /// sample's shape); a checkpoint without them gives none.
    func testStatisticsTensorsRoundTripThroughACheckpointFile() throws {
        let dir = TestFiles.tempDir("norm-ckpt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = FeatureStatistics(mean: [0.5, 0.25, 0, 1, 2, 3], std: [1, 2, 3, 4, 5, 0.5])
        let t = NormalizationFile.tensors(s, shape: [1, 2, 3])
        XCTAssertEqual(t.map { $0.name }, ["data.mean", "data.std"])
        XCTAssertEqual(t[0].shape, [1, 2, 3])
        XCTAssertEqual(t[1].floats, s.std)
        let file = NormalizationFile.encode(s, shape: [1, 2, 3], byteScaled: true)
        let decoded = try Safetensors.decode(file, source: "n")
        XCTAssertEqual(decoded.metadata["format"], "pstrain-normalization")
        XCTAssertEqual(decoded.tensors.first { $0.name == "data.mean" }?.floats, s.mean)
        try writeExampleCheckpoint(runDir: dir, weights: [Float](repeating: 0, count: 8), momentum: [Float](repeating: 0, count: 8),
                                   residual: [Float](repeating: 0, count: 8), build: "t")
        let step = try XCTUnwrap(CheckpointStore.list(dir).last?.path)
        XCTAssertNil(try NormalizationFile.statistics(step, try CheckpointStore.verify(step)))
    }

    /// With a validation set every epoch's eval record carries its accuracy,
    /// loss and size (the sum of the workers' slices); without, none of it.
    func testValidationIsEvaluatedEachEpoch() throws {
        let c = try mlpConfig(["data.synthetic_test=128"])
        let syn = syntheticData(c)
        let s = syn.train.samples
        let split = DataSplit(train: Dataset(samples: s, rows: 0..<448, classes: 10, normalization: .fashionMNIST), test: syn.test,
                              validation: Dataset(samples: s, rows: 448..<512, classes: 10, normalization: .fashionMNIST))
        let logs = try runInProcess(config: c, servers: 1, workers: 2, data: split)
        let evals = records(logs, rank: 0, EvalRecord.self)
        XCTAssertEqual(evals.count, 2)
        XCTAssertEqual(evals.map { $0.validationSamples }, [64, 64])
        XCTAssertGreaterThan(evals.last?.validationAccuracy ?? 0, 0.5)
        XCTAssertNotNil(evals.last?.validationLoss)
        XCTAssertEqual(records(logs, rank: 1, EvalPartRecord.self).last?.validationSamples, 32)
        XCTAssertEqual(records(logs, rank: 1, WorkerStartRecord.self).first?.trainSamples, 448)
        let plain = try runInProcess(config: c, servers: 1, workers: 2, data: syn)
        XCTAssertEqual(records(plain, rank: 0, EvalRecord.self).compactMap { $0.validationAccuracy }, [])
        XCTAssertEqual(records(plain, rank: 2, EvalPartRecord.self).compactMap { $0.validationCorrect }, [])
    }

    /// A worker takes samples whose shape is the model's input shape (size-1
    /// axes aside) or flat samples of its size; other shapes of that size are
    /// refused, naming both.
    func testSampleShapeMustFitTheModelInput() throws {
        var c = Config()
        for o in ["data.kind=synthetic", "model.layers=[{type=\"flatten\"},{type=\"dense\",units=10}]", "model.input=[3, 2, 2]",
                  "train.batch_size=16", "train.epochs=1"] {
            try c.apply(override: o)
        }
        let syn = DataSplit.synthetic(train: 64, test: 32, features: 12, classes: 10, seed: 7)
        func split(_ shape: [Int]) -> DataSplit {
            func set(_ d: Dataset) -> Dataset {
                let x = d.samples.x
                return Dataset(samples: Samples(x: ArrayView(base: x.base, type: x.type, shape: [d.count] + shape, owner: x.owner),
                                                labels: d.samples.labels, source: "mem"),
                               classes: 10, normalization: .fashionMNIST)
            }
            return DataSplit(train: set(syn.train), test: set(syn.test))
        }
        // The worker's set-up alone (it checks the data before any message).
        func worker(_ shape: [Int]) throws {
            let hellos = [Role.server, .worker].map {
                RankHello(role: $0, configHash: c.hash, buildHash: 0, pid: 0, configLength: 0, host: "test", runDir: "", error: "", trainCount: 64)
            }
            let ctx = RankContext(config: c, world: World(hellos: hellos), transport: InProcessHub(size: 2, mode: .eager).transport(rank: 1),
                                  log: nil, say: { _ in })
            _ = try WorkerRole(context: ctx, data: split(shape))
        }
        for ok in [[12], [1, 3, 2, 2], [3, 2, 2]] { XCTAssertNoThrow(try worker(ok), "\(ok)") }
        XCTAssertNoThrow(try runInProcess(config: c, servers: 1, workers: 1, data: split([1, 3, 2, 2])))
        let m = TestFiles.message { try worker([2, 3, 2]) }
        XCTAssertTrue(m.contains("model.input = [3, 2, 2]") && m.contains("[2, 3, 2]") && m.contains("reshape x"), m)
    }
}
