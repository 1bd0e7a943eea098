import XCTest
import CZlib
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch

final class IDXTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = NSTemporaryDirectory() + "pstrain-idx-\(getpid())-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func writeGz(_ name: String, _ bytes: [UInt8]) -> String {
        let path = dir + "/" + name
        let f = gzopen(path, "wb")!
        _ = bytes.withUnsafeBytes { gzwrite(f, $0.baseAddress, UInt32($0.count)) }
        gzclose(f)
        return path
    }

    static func header(_ dims: [Int]) -> [UInt8] {
        var h: [UInt8] = [0, 0, 8, UInt8(dims.count)]
        for d in dims {
            let big = UInt32(d).bigEndian
            withUnsafeBytes(of: big) { h.append(contentsOf: $0) }
        }
        return h
    }

    func testReadsAValidPair() throws {
        let im = writeGz("im.gz", Self.header([3, 2, 2]) + (0..<12).map { UInt8($0 * 20) })
        let lb = writeGz("lb.gz", Self.header([3]) + [1, 0, 9])
        let d = try IDX.loadPair(images: im, labels: lb)
        XCTAssertEqual(d.count, 3)
        XCTAssertEqual(d.features, 4)
        XCTAssertEqual(d.labels, [1, 0, 9])
        let out = FloatBuffer(count: 4)
        var l: UInt8 = 0
        d.gather([2], into: out.pointer, labels: &l)
        XCTAssertEqual(l, 9)
        XCTAssertEqual(out[0], (160 / 255 - Dataset.mean) / Dataset.std, accuracy: 1e-5)
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func testBadFilesAreNamedAndExplained() {
        let good = writeGz("lb.gz", Self.header([2]) + [1, 2])
        let badMagic = writeGz("magic.gz", [1, 2, 8, 3] + Array(repeating: 0, count: 20))
        var m = message { _ = try IDX.loadPair(images: badMagic, labels: good) }
        XCTAssertTrue(m.contains("magic.gz") && m.contains("magic"), m)

        let wrongDims = writeGz("dims.gz", Self.header([2, 2]) + [0, 0, 0, 0])
        m = message { _ = try IDX.loadPair(images: wrongDims, labels: good) }
        XCTAssertTrue(m.contains("dims.gz") && m.contains("2 dimensions, expected 3"), m)

        let truncated = writeGz("trunc.gz", Self.header([2, 2, 2]) + [0, 0, 0])
        m = message { _ = try IDX.loadPair(images: truncated, labels: good) }
        XCTAssertTrue(m.contains("trunc.gz") && m.contains("truncated"), m)

        let im = writeGz("im.gz", Self.header([3, 1, 1]) + [0, 0, 0])
        m = message { _ = try IDX.loadPair(images: im, labels: good) }
        XCTAssertTrue(m.contains("3 images") && m.contains("2 labels"), m)

        let badLabel = writeGz("bl.gz", Self.header([3]) + [1, 2, 200])
        m = message { _ = try IDX.loadPair(images: im, labels: badLabel) }
        XCTAssertTrue(m.contains("bl.gz") && m.contains("label 200"), m)

        m = message { _ = try IDX.loadPair(images: dir + "/missing.gz", labels: good) }
        XCTAssertTrue(m.contains("not found") && m.contains("missing.gz") && m.contains("dataset-fashion-mnist"), m)

        let garbage = dir + "/garbage.gz"
        _ = FileManager.default.createFile(atPath: garbage, contents: Data([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]))
        m = message { _ = try IDX.loadPair(images: garbage, labels: good) }
        XCTAssertTrue(m.contains("garbage.gz"), m)
    }

    func testRealFashionMNISTWhenInstalled() throws {
        let d = "/usr/share/datasets/fashion-mnist"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: d + "/train-images-idx3-ubyte.gz"), "dataset-fashion-mnist not installed")
        var c = Config()
        try c.apply(override: "data.dir=\"\(d)\"")
        let s = try DataSplit.load(c.data, features: c.model.inputSize)
        XCTAssertEqual(s.train.count, 60_000)
        XCTAssertEqual(s.test.count, 10_000)
        XCTAssertEqual(s.train.features, 784)
        // Fashion-MNIST is balanced: 6,000 training images per class.
        var perClass = [Int](repeating: 0, count: 10)
        for l in s.train.labels { perClass[Int(l)] += 1 }
        XCTAssertEqual(perClass, Array(repeating: 6000, count: 10))
    }
}

final class SamplerTests: XCTestCase {
    func testPermutationIsDeterministicPerEpoch() {
        let s = Sampler(count: 1000, batchSize: 100, seed: 42)
        let a = s.permutation(epoch: 3)
        XCTAssertEqual(a, s.permutation(epoch: 3))
        XCTAssertEqual(Set(a).count, 1000)
        XCTAssertEqual(a.min(), 0); XCTAssertEqual(a.max(), 999)
        XCTAssertNotEqual(a, s.permutation(epoch: 4))
        XCTAssertNotEqual(a, Sampler(count: 1000, batchSize: 100, seed: 43).permutation(epoch: 3))
    }

    func testSlicesAreDisjointAndComplete() {
        for batch in [1, 7, 128, 129] {
            for workers in 1...5 where workers <= batch {
                let slices = (0..<workers).map { Sampler.slice(batch: batch, worker: $0, of: workers) }
                XCTAssertEqual(slices.first!.lowerBound, 0)
                XCTAssertEqual(slices.last!.upperBound, batch)
                for k in 1..<workers { XCTAssertEqual(slices[k - 1].upperBound, slices[k].lowerBound) }
                let sizes = slices.map { $0.count }
                XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1)
            }
        }
    }
}

final class ShardPlanTests: XCTestCase {
    func testBalancedAndCutThroughTheBigLayer() throws {
        let m = try Model(Config().model, capacity: 1)
        XCTAssertEqual(m.layout.totalCount, 235_146)
        XCTAssertEqual(m.layout.tensors.map { $0.name },
                       ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias", "layers.4.weight", "layers.4.bias"])
        let plan = ShardPlan(total: m.layout.totalCount, servers: 2)
        XCTAssertEqual(plan.range(0).count - plan.range(1).count, 0)
        let chunks = plan.shards(m.layout)
        // The first layer's weight (200,704 elements) is split across both servers.
        XCTAssertEqual(chunks.filter { $0.tensor == 0 }.map { $0.server }, [0, 1])
        XCTAssertEqual(chunks.reduce(0) { $0 + $1.range.count }, m.layout.totalCount)
        for s in [1, 3, 7] {
            let p = ShardPlan(total: 1001, servers: s)
            XCTAssertEqual(p.bounds.first, 0); XCTAssertEqual(p.bounds.last, 1001)
            let sizes = (0..<s).map { p.range($0).count }
            XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1)
        }
    }

    func testInitialisationDoesNotDependOnTheCut() throws {
        let m = try Model(Config().model, capacity: 1)
        let n = m.layout.totalCount
        let whole = FloatBuffer(count: n)
        m.layout.initialize(seed: 5, range: 0, n, into: whole.pointer)
        let plan = ShardPlan(total: n, servers: 3)
        for s in 0..<3 {
            let r = plan.range(s)
            let part = FloatBuffer(count: r.count)
            m.layout.initialize(seed: 5, range: r.lowerBound, r.upperBound, into: part.pointer)
            XCTAssertTrue(memcmp(part.pointer, whole.pointer + r.lowerBound, r.count * 4) == 0, "server \(s)")
        }
        // PyTorch-style bound for nn.Linear(784, 256): 1/sqrt(784) = 1/28.
        let w0 = Array(whole.buffer[0..<200_704])
        XCTAssertLessThanOrEqual(w0.map(abs).max()!, 1 / 28)
        XCTAssertGreaterThan(w0.map(abs).max()!, 0.99 / 28)
    }
}
