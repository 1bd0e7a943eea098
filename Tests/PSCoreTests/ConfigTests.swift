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

    /// Found by fuzzing (docs/fuzzing.md): deeply nested arrays, inline tables
    /// and dotted keys overflowed the stack (the parser recursed once per
    /// level without a bound) and killed the process. Now an error names the
    /// line; nesting up to the limit still parses.
    func testDeepNestingIsAnErrorNotACrash() throws {
        let n = 100_000
        let deep = [
            "a = " + String(repeating: "[", count: n) + String(repeating: "]", count: n),
            "a = " + String(repeating: "{b=", count: n) + "1" + String(repeating: "}", count: n),
            "x" + String(repeating: ".x", count: n) + " = 1",
            "[x" + String(repeating: ".x", count: n) + "]",
            "a = [" + String(repeating: "{b.c.d.e.f.g.h = [", count: 20) + "]",
        ]
        for text in deep {
            XCTAssertThrowsError(try TOML.parse("ok = 1\n" + text + "\n", source: "deep.toml")) { err in
                XCTAssertTrue("\(err)".hasPrefix("deep.toml:2: "), "\(err)")
                XCTAssertTrue("\(err)".contains("deeper than 64") || "\(err)".contains("more than 64 dotted parts"), "\(err)")
            }
        }
        let k = TOMLParser.maxDepth - 1
        let t = try TOML.parse("a = " + String(repeating: "[", count: k) + String(repeating: "]", count: k), source: "ok.toml")
        XCTAssertNotNil(t["a"])
        XCTAssertNoThrow(try TOML.parse("[s]\nx" + String(repeating: ".x", count: k - 2) + " = 1", source: "ok.toml"))
        XCTAssertThrowsError(try Config.parse("model.layers = " + String(repeating: "[", count: n), source: "c.toml"))
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
    }
}
