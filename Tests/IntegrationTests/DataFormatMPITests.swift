import Foundation
import PSSupport
import PSNumerics
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog
import PSProtocol
import XCTest

/// Real jobs on user data: the first Fashion-MNIST images written by numpy
/// as .npz, safetensors and IDX files (scripts/bootstrap --python installs
/// numpy and safetensors for python3), and as CSV by examples/fashion-csv.py.
final class DataFormatMPITests: XCTestCase {
    /// Writes `train` training and `test` test images (the first of each
    /// Fashion-MNIST file) in every format into `dir`.
    static func writeSubsets(_ dir: String, train: Int, test: Int) throws {
        let script = """
        import gzip, sys, numpy as np
        from safetensors.numpy import save_file
        d, ntr, nte = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        src = "/usr/share/datasets/fashion-mnist/"
        def read(name, n, offset, size):
            with gzip.open(src + name) as f:
                return np.frombuffer(f.read(), np.uint8, offset=offset)[:n * size]
        for part, prefix, n in (("train", "train", ntr), ("test", "t10k", nte)):
            x = read(prefix + "-images-idx3-ubyte.gz", n, 16, 784).reshape(n, 1, 28, 28)
            y = read(prefix + "-labels-idx1-ubyte.gz", n, 8, 1)
            np.savez(d + "/" + part + ".npz", x=x, y=y.astype(np.int64))
            save_file({"x": x, "y": y.astype(np.int32)}, d + "/" + part + ".safetensors")
            for kind, arr, dims in (("images-idx3", x, [n, 28, 28]), ("labels-idx1", y, [n])):
                header = bytes([0, 0, 8, len(dims)]) + b"".join(int(k).to_bytes(4, "big") for k in dims)
                with gzip.open(d + "/" + part + "-" + kind + "-ubyte.gz", "wb") as f:
                    f.write(header + arr.tobytes())
        """
        let r = Harness.run("/usr/bin/env", ["python3", "-c", script, dir, String(train), String(test)], cwd: dir, timeout: 120)
        guard r.status == 0 else { throw HarnessError(message: "python3 with numpy and safetensors (scripts/bootstrap --python): \(r.output)") }
    }

    func launch(_ dir: String, _ run: String, _ format: String, _ extra: [String], epochs: Int = 2) throws -> ProcessResult {
        try Harness.launch(["--workers", "2", "--servers", "1", "--epochs", String(epochs), "--run-dir", run,
                            "--set", "data.format=\(format)", "--set", "data.train=train.\(format)", "--set", "data.test=test.\(format)"] + extra,
                           cwd: dir)
    }

    /// W=2 S=1 from an .npz file (standardised by default) and from the CSV
    /// files of examples/fashion-csv.py with examples/fashion-csv.toml (10%
    /// held out for validation): both learn (above 75% on the
    /// first 1,000 test images after 2 epochs on 6,000), the run directory
    /// holds the standardisation numbers and the CSV caches, and worker 0's
    /// checkpoint file holds the numbers as tensors of the sample's shape.
    func testTrainsFromNPZAndFromCSV() throws {
        let dir = Harness.tempDir("formats")
        try Self.writeSubsets(dir, train: 6000, test: 1000)
        let npz = try launch(dir, "npz", "npz", [])
        assertEnded(npz, status: 0, "npz")
        let toml = try String(contentsOfFile: dir + "/npz/run.toml", encoding: .utf8)
        XCTAssertTrue(toml.contains("train = \"\(dir)/train.npz\""), "run.toml names the files by absolute path\n\(toml)")
        let evals = Harness.records(dir + "/npz/logs/server-0.jsonl", EvalRecord.self)
        XCTAssertEqual(evals.count, 2)
        XCTAssertGreaterThan(evals.last?.testAccuracy ?? 0, 0.75, "npz")
        XCTAssertNil(evals.last?.validationAccuracy)
        let norm = try Safetensors.decode(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/npz/normalization.safetensors"))), source: "n")
        let mean = try XCTUnwrap(norm.tensors.first { $0.name == "data.mean" })
        XCTAssertEqual(mean.shape, [1, 28, 28])
        XCTAssertEqual(Double(mean.floats.reduce(0, +)) / 784, 0.286, accuracy: 0.01, "the pixels' mean (Fashion-MNIST's is 0.2860)")
        let last = try XCTUnwrap(CheckpointStore.list(dir + "/npz").last?.path)
        let w0 = try Safetensors.decode(Array(try Data(contentsOf: URL(fileURLWithPath: last + "/worker-0.safetensors"))), source: "w0")
        XCTAssertEqual(w0.tensors.first { $0.name == "data.mean" }, mean)
        XCTAssertNotNil(try NormalizationFile.statistics(last, try CheckpointStore.verify(last)))

        let script = Harness.run("/usr/bin/env", ["python3", Harness.root + "/examples/fashion-csv.py", "--train", "6000", "--test", "1000"],
                                 cwd: dir, timeout: 120)
        assertEnded(script, status: 0, "examples/fashion-csv.py")
        let csv = try Harness.launch(["--workers", "2", "--servers", "1", "--epochs", "2", "--run-dir", "csv",
                                      "--config", Harness.root + "/examples/fashion-csv.toml"], cwd: dir)
        assertEnded(csv, status: 0, "csv")
        let ce = Harness.records(dir + "/csv/logs/server-0.jsonl", EvalRecord.self)
        XCTAssertEqual(ce.count, 2)
        XCTAssertGreaterThan(ce.last?.testAccuracy ?? 0, 0.75, "csv")
        XCTAssertEqual(ce.last?.validationSamples, 600)
        XCTAssertGreaterThan(ce.last?.validationAccuracy ?? 0, 0.7, "csv validation")
        XCTAssertTrue(csv.stdout.contains("validation accuracy"), csv.stdout)
        XCTAssertEqual(Harness.records(dir + "/csv/logs/worker-0.jsonl", WorkerStartRecord.self).first?.trainSamples, 5400)
        let caches = try FileManager.default.contentsOfDirectory(atPath: dir + "/csv/data-cache")
        XCTAssertEqual(caches.filter { $0.hasSuffix(".pstrain-cache") }.count, 2, "\(caches)")
        XCTAssertEqual(caches.filter { $0.contains(".tmp-") }, [])
    }

    /// The same images as IDX files (the default normalisation, today's),
    /// as .npz and as safetensors (data.normalize = "scalar", the same
    /// numbers): the same floats reach the model, so W=2 S=1 ends with
    /// bit-identical parameters on every rank.
    func testIDXNPZAndSafetensorsTrainBitIdentically() throws {
        let dir = Harness.tempDir("same-bits")
        try Self.writeSubsets(dir, train: 2048, test: 512)
        let idx = try Harness.launch(["--workers", "2", "--servers", "1", "--epochs", "1", "--run-dir", "idx",
                                      "--set", "data.train=train-images-idx3-ubyte.gz", "--set", "data.test=test-images-idx3-ubyte.gz"], cwd: dir)
        assertEnded(idx, status: 0, "idx")
        let a = Harness.finalState(dir + "/idx", servers: 1, workers: 2)
        Harness.assertComplete(a)
        for format in ["npz", "safetensors"] {
            let r = try launch(dir, format, format, ["--set", "data.normalize=scalar"], epochs: 1)
            assertEnded(r, status: 0, format)
            XCTAssertEqual(Harness.finalState(dir + "/" + format, servers: 1, workers: 2), a, "\(format) trains as idx does, bit for bit")
        }
        let standardized = try launch(dir, "std", "npz", [], epochs: 1)
        assertEnded(standardized, status: 0, "standardize")
        XCTAssertNotEqual(Harness.finalState(dir + "/std", servers: 1, workers: 2), a, "another normalisation gives other bits")
    }

    /// A standardised run killed at step 25 and resumed from step-20 (whose
    /// worker-0 file holds the numbers) ends as the straight run does.
    func testStandardizedRunResumesExactly() throws {
        let dir = Harness.tempDir("std-resume")
        try Self.writeSubsets(dir, train: 2048, test: 512)
        let common = ["--set", "checkpoint.every_steps=10"]
        let straight = try launch(dir, "a", "npz", common)
        assertEnded(straight, status: 0, "straight")
        let killed = try launch(dir, "b", "npz", common + ["--set", "debug.die_at_steps=25"])
        assertEnded(killed, status: nil, "killed")
        let r = Harness.run(try Harness.executable("pstrain"), ["resume", "b"], cwd: dir, timeout: 180)
        assertEnded(r, status: 0, "resume")
        XCTAssertTrue(r.stdout.contains("from step-20"), r.stdout)
        let a = Harness.finalState(dir + "/a", servers: 1, workers: 2)
        Harness.assertComplete(a)
        XCTAssertEqual(Harness.finalState(dir + "/b", servers: 1, workers: 2), a)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/a/normalization.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: dir + "/b/normalization.safetensors")))
    }
}
