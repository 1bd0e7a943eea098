import XCTest
@testable import PSCore

final class TOMLTests: XCTestCase {
    func testValues() throws {
        let t = try TOML.parse("""
        # comment
        a = 1_000
        b = -2.5e-3
        c = "x\\ty\\u00e9"
        d = 'lit\\eral'
        e = [1, 2,
             3, ]   # trailing comma
        f = { g = true, h = "i" }
        [s.t]
        u.v = false
        """, source: "t.toml")
        XCTAssertEqual(t["a"], .integer(1000))
        XCTAssertEqual(t["b"], .float(-2.5e-3))
        XCTAssertEqual(t["c"], .string("x\tyé"))
        XCTAssertEqual(t["d"], .string("lit\\eral"))
        XCTAssertEqual(t["e"], .array([.integer(1), .integer(2), .integer(3)]))
        guard case .table(let f)? = t["f"] else { return XCTFail("f is not a table") }
        XCTAssertEqual(f["g"], .bool(true))
        guard case .table(let s)? = t["s"], case .table(let tt)? = s["t"], case .table(let u)? = tt["u"] else {
            return XCTFail("nested tables missing")
        }
        XCTAssertEqual(u["v"], .bool(false))
    }

    func testErrorsNameTheLine() {
        func message(_ text: String) -> String {
            do { _ = try TOML.parse(text, source: "f.toml"); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message("a = 1\nb = \"open\n").hasPrefix("f.toml:2:"), message("a = 1\nb = \"open\n"))
        XCTAssertTrue(message("a = 1\na = 2").contains("defined twice"))
        XCTAssertTrue(message("a = 1979-05-27").contains("dates"))
        XCTAssertTrue(message("a = hello").contains("strings need quotes"))
        XCTAssertTrue(message("[[x]]").contains("arrays of tables"))
        XCTAssertTrue(message("a = 1 b = 2").contains("end of the line"))
    }

    /// Nesting is bounded (the parser recurses once per level): a deep file is
    /// an error naming the line, not a stack overflow.
    func testNestingDepthIsBounded() throws {
        func message(_ text: String) -> String {
            do { _ = try TOML.parse(text, source: "deep.toml"); return "" } catch { return "\(error)" }
        }
        let deep = 100_000
        for text in ["x = 1\na = " + String(repeating: "[", count: deep) + String(repeating: "]", count: deep),
                     "x = 1\na = " + String(repeating: "{b = ", count: deep) + "1" + String(repeating: "}", count: deep),
                     "x = 1\n" + Array(repeating: "k", count: deep).joined(separator: ".") + " = 1",
                     "x = 1\n[" + Array(repeating: "k", count: deep).joined(separator: ".") + "]"] {
            let m = message(text)
            XCTAssertTrue(m.hasPrefix("deep.toml:2:") && m.contains("more than \(TOML.maxDepth) levels"), String(m.prefix(200)))
        }
        // Exactly the limit is fine: the innermost 1 sits at level 32.
        let limit = TOML.maxDepth
        let t = try TOML.parse("a = " + String(repeating: "[", count: limit - 1) + "1" + String(repeating: "]", count: limit - 1), source: "ok.toml")
        XCTAssertNotNil(t["a"])
        XCTAssertTrue(message("a = " + String(repeating: "[", count: limit) + "1" + String(repeating: "]", count: limit)).contains("levels"))
        XCTAssertTrue(message("[s]\na = {b = {c = " + String(repeating: "[", count: limit - 3) + "1" + String(repeating: "]", count: limit - 3) + "}}")
            .contains("levels"), "table headers and inline-table keys count")
    }
}

final class ConfigTests: XCTestCase {
    func testDefaultsRoundTripThroughCanonicalForm() throws {
        let c = Config()
        let again = try Config.parse(c.canonicalTOML, source: "canonical")
        XCTAssertEqual(again.values, c.values)
        XCTAssertEqual(again.hash, c.hash)
    }

    func testExampleFileIsTheDefault() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let c = try Config.load(path: root.appendingPathComponent("examples/fashion-mlp.toml").path)
        XCTAssertEqual(c.values, Config().values, "examples/fashion-mlp.toml drifted from the built-in defaults")
        XCTAssertEqual(try c.layerSpecs(), [.dense(units: 256), .relu, .dense(units: 128), .relu, .dense(units: 10)])
    }

    func testUnknownKeyIsNamedWithASuggestion() {
        XCTAssertThrowsError(try Config.parse("[train]\nlrr = 0.1\n", source: "x.toml")) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("x.toml") && m.contains("'train.lrr'") && m.contains("did you mean 'train.lr'"), m)
        }
        XCTAssertThrowsError(try Config.parse("[bogus]\nkey = 1\n", source: "x.toml")) { e in
            XCTAssertTrue("\(e)".contains("'bogus.key'"), "\(e)")
        }
    }

    func testWrongTypeIsNamed() {
        XCTAssertThrowsError(try Config.parse("[train]\nepochs = \"ten\"\n", source: "x.toml")) { e in
            XCTAssertTrue("\(e)".contains("'train.epochs' must be an integer, not string"), "\(e)")
        }
        XCTAssertThrowsError(try Config.parse("[model]\nlayers = [{type = \"conv\"}]\n", source: "x.toml")) { e in
            XCTAssertTrue("\(e)".contains("model.layers[0]") && "\(e)".contains("conv"), "\(e)")
        }
        XCTAssertThrowsError(try Config.parse("[train]\nmomentum = 1.5\n", source: "x.toml")) { e in
            XCTAssertTrue("\(e)".contains("train.momentum"), "\(e)")
        }
    }

    func testOverridesAndDifferences() throws {
        var a = Config()
        try a.apply(override: "train.lr=0.2")
        try a.apply(override: "data.kind=synthetic")   // bare word taken as a string
        XCTAssertEqual(a.lr, 0.2)
        XCTAssertEqual(a.dataKind, "synthetic")
        XCTAssertThrowsError(try a.apply(override: "train.lr")) { e in XCTAssertTrue("\(e)".contains("key=value")) }
        XCTAssertThrowsError(try a.apply(override: "train.nope=1")) { e in XCTAssertTrue("\(e)".contains("train.nope")) }
        let d = a.differences(from: Config())
        XCTAssertEqual(d.map { $0.key }, ["data.kind", "train.lr"])
        XCTAssertNotEqual(a.hash, Config().hash)
    }

    func message(_ text: String, source: String = "b.toml") -> String {
        do { _ = try Config.parse(text, source: source); return "" } catch { return "\(error)" }
    }

    /// `key = value` as a file of its section.
    func file(_ key: String, _ value: TOMLValue) -> String {
        let parts = key.split(separator: ".", maxSplits: 1)
        return "[\(parts[0])]\n\(parts[1]) = \(value)\n"
    }

    /// Every number has a finite range; just outside it (and inf, -inf and
    /// nan for floats) is an error naming the file, the key, the value and
    /// the range.
    func testEveryNumericKeyIsBounded() {
        let numeric = Config.schema.filter { $0.kind == .integer || $0.kind == .float }
        XCTAssertEqual(numeric.filter { $0.range == nil }.map { $0.key }, ["train.seed"], "only the seed takes any 64-bit integer")
        for f in numeric {
            guard let r = f.range else { continue }
            XCTAssertTrue(r.lower.isFinite && r.upper.isFinite && r.lower < r.upper, f.key)
            var outside: [TOMLValue]
            if f.kind == .integer {
                outside = [.integer(Int(r.upper) + 1), .integer(Int(r.lower) - 1), .integer(Int.max), .integer(Int.min)]
            } else {
                outside = [.float(r.upperOpen ? r.upper : r.upper + max(1, r.upper)), .float(r.lowerOpen ? r.lower : r.lower - 1),
                           .float(.infinity), .float(-.infinity), .float(.nan)]
            }
            for v in outside {
                let m = message(file(f.key, v))
                XCTAssertTrue(m.hasPrefix("b.toml: \(f.key) = \(v) is out of range") && m.hasSuffix(" in \(r.text)"), "\(f.key) = \(v): \(m)")
            }
            // The ends themselves, when closed, are accepted (within the other keys' limits).
            for (end, open) in [(r.lower, r.lowerOpen), (r.upper, r.upperOpen)] where !open {
                let v: TOMLValue = f.kind == .integer ? .integer(Int(end)) : .float(end)
                let m = message(file(f.key, v))
                XCTAssertTrue(m.isEmpty || !m.contains("out of range"), "\(f.key) = \(v) is allowed: \(m)")
            }
        }
        var c = Config()
        XCTAssertThrowsError(try c.apply(override: "run.timeout_seconds=inf")) { e in
            XCTAssertEqual("\(e)", "command line: run.timeout_seconds = inf is out of range: it must be a finite number in (0, 86400]")
        }
        XCTAssertThrowsError(try c.apply(override: "scaler.initial=2e12")) { e in XCTAssertTrue("\(e)".contains("scaler.initial = 2000000000000.0"), "\(e)") }
        XCTAssertTrue(message("[scaler]\ninitial = 4\nmin = 8\n").contains("scaler.initial = 4.0 must lie in [scaler.min, scaler.max] = [8.0, 16777216.0]"))
    }

    /// The largest message the chunk limit allows fits an MPI count (Int32
    /// bytes), with the real frame and codec bounds; the model limits keep
    /// FP32 byte counts below Int32.max as well.
    func testLimitsKeepByteCountsInInt32() {
        var dense = CodecSettings(), sparse = CodecSettings()
        dense.topk = 0
        sparse.topk = 1   // the worst case: every element kept, with its index
        for p in [Precision.fp32, .fp16, .bf16] {
            for s in [dense, sparse] {
                XCTAssertLessThanOrEqual(FrameHeader.size + PieceCodec.maxEncodedBytes(Config.maxChunkElements, p, s, sparse: true), Int(Int32.max))
            }
        }
        XCTAssertLessThanOrEqual(8 + 8 * Config.maxChunkElements, Int(Int32.max), "PieceCodec scratch")
        XCTAssertLessThan(4 * Config.maxParameters, Int(Int32.max))
        XCTAssertLessThan(4 * Config.maxActivationElements, Int(Int32.max))
        XCTAssertEqual(Config.schema.first { $0.key == "run.chunk_elements" }?.range?.upper, Double(Config.maxChunkElements))
    }

    func layers(_ units: [Int]) -> String {
        "[model]\nlayers = [" + units.map { "{type = \"dense\", units = \($0)}" }.joined(separator: ", ") + "]\n"
    }

    /// Layer widths, the parameter count and the activation buffers are bounded.
    func testModelSizesAreBounded() {
        XCTAssertEqual(message(layers([784 * 100, 10])), "", "a 62M-parameter model is fine")
        XCTAssertTrue(message(layers([(1 << 20) + 1, 10])).contains("b.toml: model.layers[0].units = 1048577 is out of range: it must be an integer in [1, 1048576]"))
        XCTAssertTrue(message("[model]\ninput = 1099511627776\n").contains("model.input = 1099511627776 is out of range"))
        // 1024 x 1048576 weights: 2^30 parameters.
        let big = message("[model]\ninput = 1024\n" + layers([1 << 20, 10]).dropFirst(8))
        XCTAssertTrue(big.contains("has 1085276170 parameters, more than the 268435456 (2^28) allowed"), big)
        // 2^20 rows of a 1024-wide layer: 2^30 activations.
        let acts = message("[train]\nbatch_size = 1048576\n" + layers([1024, 10]))
        XCTAssertTrue(acts.contains("train.batch_size = 1048576 with a layer 1024 wide needs an activation buffer of 1048576 x 1024"), acts)
        let many = "[model]\nlayers = [" + String(repeating: "{type = \"relu\"}, ", count: 1000) + "{type = \"dense\", units = 10}]\n"
        XCTAssertTrue(message(many).contains("model.layers has 1001 layers, more than the 1000 allowed"))
        let synth = message("[data]\nkind = \"synthetic\"\nsynthetic_train = 1000000\n[model]\ninput = 4096\n")
        XCTAssertTrue(synth.contains("data.synthetic_train = 1000000 samples of model.input = 4096 bytes is 4096000000 bytes"), synth)
    }

    /// A checkpoint's embedded configuration (ckpt export builds the model
    /// from it) is checked like a file.
    func testCheckpointConfigurationIsValidated() throws {
        var m = Manifest(run: "t", step: 5, epoch: 0, epochCursor: 0, stepsPerEpoch: 10, totalSteps: 20, seed: 1, dataOrder: "", rng: "",
                         lrSchedule: "constant", learningRate: 0.1,
                         scaler: .init(scale: 1, goodSteps: 0, hysteresisLeft: 2, skipped: 0, overflowsAtMin: 0, lastFiniteStep: 4),
                         servers: 1, workers: 1, precision: "fp32", compression: "none", build: "test", configHash: "0",
                         config: Config().canonicalTOML, created: 0, files: [], tensors: [])
        XCTAssertEqual(try m.configuration(folder: "/r/step-5").values, Config().values)
        m.config = Config().canonicalTOML.replacingOccurrences(of: "input = 784", with: "input = 1099511627776")
        XCTAssertThrowsError(try m.configuration(folder: "/r/step-5")) { e in
            XCTAssertTrue("\(e)".hasPrefix("/r/step-5/manifest.json (config): model.input = 1099511627776 is out of range"), "\(e)")
        }
        m.config = Config().canonicalTOML.replacingOccurrences(of: "lr = 0.05", with: "lr = nan")
        XCTAssertThrowsError(try m.configuration(folder: "/r/step-5")) { e in XCTAssertTrue("\(e)".contains("train.lr = nan"), "\(e)") }
    }
}

final class LaunchPlanTests: XCTestCase {
    func testFlagsThatApply() {
        var p = MpirunPlan(workers: 2, servers: 1, binDir: "/b", configPath: "/r/run.toml", runDir: "/r",
                           isRoot: true, cores: 2, blasThreads: 1)
        XCTAssertEqual(p.arguments.prefix(5), ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"])
        XCTAssertEqual(Array(p.arguments.suffix(17)),
                       ["-np", "1", "/b/pstrain-server", "--config", "/r/run.toml", "--run-dir", "/r",
                        ":", "-x", "OPENBLAS_NUM_THREADS=1", "-np", "2", "/b/pstrain-worker", "--config", "/r/run.toml", "--run-dir", "/r"])
        XCTAssertTrue(p.commandLine.contains("-np 1 /b/pstrain-server --config /r/run.toml --run-dir /r : -x OPENBLAS_NUM_THREADS=1 -np 2 /b/pstrain-worker"))
        p.isRoot = false
        p.workers = 1
        XCTAssertFalse(p.arguments.contains("--allow-run-as-root"))
        XCTAssertFalse(p.arguments.contains("--oversubscribe"), "2 ranks fit 2 cores")
        p.hostfile = "hosts"
        p.workers = 8
        XCTAssertFalse(p.arguments.contains("--oversubscribe"), "with a hostfile the slots decide")
        XCTAssertTrue(p.commandLine.contains("--hostfile hosts") && p.commandLine.contains("self,vader,tcp"))
        XCTAssertFalse(p.commandLine.contains("eager_limit"), "no transport setting hides buffer bugs (docs/cluster.md)")
        p.mapBy = "node"
        XCTAssertTrue(p.commandLine.contains("--hostfile hosts --map-by node"))
    }

    func testMpirunFailuresInPlainWords() {
        let p = MpirunPlan(workers: 9, servers: 1, binDir: "/b", configPath: "c", runDir: "r", hostfile: "h",
                           isRoot: false, cores: 2, blasThreads: 1)
        XCTAssertTrue(explainMpirunFailure("There are not enough slots available in the system", plan: p)!.contains("slots=N"))
        XCTAssertTrue(explainMpirunFailure("mpirun noticed that process rank 2 with PID 77 on node x exited on signal 9 (Killed).", plan: p)!
            .contains("rank 2 with PID 77 on node x was killed by signal 9"))
        XCTAssertTrue(explainMpirunFailure("All nodes which are allocated for this job are already filled.", plan: p)!.contains("not enough slots"))
        XCTAssertNil(explainMpirunFailure("all fine", plan: p))
    }
}

final class BLASInfoTests: XCTestCase {
    func testCoreTypeRecommendation() {
        let avx512: Set<String> = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]
        XCTAssertEqual(BLASInfo.recommendedCoreType(current: "Prescott", flags: avx512, environment: [:]), "SkylakeX")
        XCTAssertEqual(BLASInfo.recommendedCoreType(current: "Prescott", flags: ["avx2", "fma"], environment: [:]), "Haswell")
        XCTAssertNil(BLASInfo.recommendedCoreType(current: "Prescott", flags: ["sse2"], environment: [:]))
        XCTAssertNil(BLASInfo.recommendedCoreType(current: "Zen", flags: avx512, environment: [:]), "OpenBLAS knew the CPU")
        XCTAssertNil(BLASInfo.recommendedCoreType(current: "Prescott", flags: avx512, environment: ["OPENBLAS_CORETYPE": "Haswell"]),
                     "the user's choice stands")
    }

    func testSgemmAgreesWithAPlainLoop() throws {
        XCTAssertNoThrow(try BLASInfo.selfCheck(), "OpenBLAS kernels \(BLASInfo.coreName)")
    }
}

final class DocsTests: XCTestCase {
    /// docs/config.md names every configuration key the code knows.
    func testEveryConfigKeyIsDocumented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/config.md"), encoding: .utf8)
        let missing = Config.schema.map { $0.key }.filter { !doc.contains($0) }
        XCTAssertEqual(missing, [], "keys missing from docs/config.md")
        // Each numeric key's row states its range, as the error messages do.
        let rows = doc.split(separator: "\n").filter { $0.hasPrefix("|") }
        let wrong = Config.schema.compactMap { f in f.range.map { (f.key, $0.text) } }
            .filter { key, text in !rows.contains { $0.contains("`\(key)`") && $0.contains(text) } }
            .map { "\($0.0) \($0.1)" }
        XCTAssertEqual(wrong, [], "ranges missing from docs/config.md")
    }
}
