import XCTest
@testable import PSSupport
@testable import PSNumerics
@testable import PSCodec
@testable import PSData
@testable import PSConfig
@testable import PSCheckpoint
@testable import PSRunLog
@testable import PSProtocol
@testable import PSLaunch

/// Reading TOML (TOMLKit, behind TOMLDocument) and the pre-scan that bounds nesting.
final class TOMLTests: XCTestCase {
    /// TOML 1.0's rules, each kept: what must read, and what must be an
    /// error naming its line (never a crash: toml++ aborted on some of
    /// these shapes, issue 20).
    func testTOML10Rules() throws {
        func read(_ text: String) throws -> [String: ConfigValue] { try TOMLDocument(text, source: "r.toml").root }
        XCTAssertEqual(try read("a = 0xDEAD_beef\nb = 0o17\nc = 0b101\nd = +7\ne = -0\nf = 9223372036854775807"),
                       ["a": .integer(0xDEADBEEF), "b": .integer(15), "c": .integer(5), "d": .integer(7), "e": .integer(0), "f": .integer(Int.max)])
        XCTAssertEqual(try read("a = 1e5\nb = 6.626e-34\nc = -inf\nd = 1_000.5_5\ne = 5E+2_2"),
                       ["a": .float(1e5), "b": .float(6.626e-34), "c": .float(-.infinity), "d": .float(1000.55), "e": .float(5e22)])
        guard case .float(let n)? = try read("n = -nan")["n"], n.isNaN else { return XCTFail("nan") }
        XCTAssertEqual(try read("s = \"\"\"\nab\\\n   cd\\\r\n  \"\"\"")["s"], .string("abcd"), "a line-ending backslash")
        XCTAssertEqual(try read("t = '''\na'b''''")["t"], .string("a'b'"))
        XCTAssertEqual(try read("v = \"\\U0001F600\\\"\"")["v"], .string("\u{1F600}\""))
        XCTAssertEqual(try read("\"a b\".'c' = 1\n\"\" = 2"), ["a b": .table(["c": .integer(1)]), "": .integer(2)])
        XCTAssertEqual(try read("[a.b]\nx = 1\n[a]\ny = 2\n[a.c]\n"),
                       ["a": .table(["b": .table(["x": .integer(1)]), "y": .integer(2), "c": .table([:])])])
        XCTAssertEqual(try read("[[t]]\nx = 1\n[t.s]\ny = 2\n[[t]]\nx = 3\n[[t.u]]\n"),
                       ["t": .array([.table(["x": .integer(1), "s": .table(["y": .integer(2)])]), .table(["x": .integer(3), "u": .array([.table([:])])])])])
        XCTAssertEqual(try read("[f]\napple.color = 1\napple.taste.sweet = true\n[f.apple.texture]\nsmooth = true")["f"],
                       .table(["apple": .table(["color": .integer(1), "taste": .table(["sweet": .bool(true)]), "texture": .table(["smooth": .bool(true)])])]))
        XCTAssertEqual(try read("a = 1 # c\r\nb = [ # c\n 1, # c\n]\r\n")["b"], .array([.integer(1)]))
        XCTAssertEqual(try read("d = 2024-02-29T23:59:60.5+05:30\nt = 00:00:00.001\nl = 1979-05-27t07:32:00z"),
                       ["d": .dateTime("2024-02-29T23:59:60.5+05:30"), "t": .dateTime("00:00:00.001"), "l": .dateTime("1979-05-27T07:32:00Z")])
        // Each of these is an error naming line 2 or later.
        let bad = [
            "lr = 1" + String(repeating: "_", count: 117) + "979-05-27 07:32:00",   // aborted toml++ (its history buffer)
            "a = 1__0", "a = _1", "a = 1_", "a = 01", "a = +0x1", "a = 0x", "a = 9223372036854775808", "a = -9223372036854775809",
            "a = 0xFFFFFFFFFFFFFFFFF", "a = 1.", "a = .5", "a = 1e", "a = 1.5e3.1", "a = 1e400", "a = 1.2.3", "a = 03.14", "a = infinity",
            "a = 2023-02-29", "a = 2023-13-01", "a = 2023-01-01T24:00:00", "a = 12:60:00", "a = 1979-05-27T07:32:00+24:00",
            "a = 1979-05-27T07:32", "a = 07:32", "a = 1979-05-27X",
            "a = \"\\x41\"", "a = \"\\uD800\"", "a = \"\\u12\"", "a = \"tab\u{7F}\"", "a = 'a\u{1}'", "a = \"\"\"x", "a = '''x",
            "a = \"a\rb\"", "# \u{7}", "a = 1\r", "a = {b = 1,}", "a = {b = 1\n}", "a = {b = 1, b = 2}", "a = [1 2]", "a = [,]",
            "a = true1", "a = True", "a.b = 1\na = 2", "a = {}\na.b = 1", "[x]\n[x]", "[x.y]\n[x]\n[x]", "x.y = 1\n[x.y]",
            "[x.y]\nz = 1\n[x]\ny.w = 2", "x = [1]\n[[x]]", "[[x]]\n[x]", "x = 1\n[x.y]", "[a]b = 1", "[a]]", "[[a]", "a == 1",
            "= 1", "a = 1\nb = 2 3", "a.\"\"\"b\"\"\" = 1", "a = \"\\", "a = '", "a = [", "a = {", "[", "[[", "a.", "a = 1979-05-27 07:3",
        ]
        for text in bad {
            XCTAssertThrowsError(try read("z = 0\n" + text), text.debugDescription) { e in
                guard let c = e as? ConfigError, let p = c.position else { return XCTFail("\(e)") }
                XCTAssertTrue(p.line >= 2 && "\(c)".hasPrefix("r.toml:"), "\(text.debugDescription): \(c)")
            }
        }
    }

    func testValues() throws {
        let t = try TOMLDocument("""
        # comment
        a = 1_000
        b = -2.5e-3
        c = "x\\ty\\u00e9"
        d = 'lit\\eral'
        e = [1, 2,
             3, ]   # trailing comma
        f = { g = true, h = "i" }
        m = \"""
        two
        lines\"""
        [s.t]
        u.v = false
        """, source: "t.toml").root
        XCTAssertEqual(t["a"], .integer(1000))
        XCTAssertEqual(t["b"], .float(-2.5e-3))
        XCTAssertEqual(t["c"], .string("x\tyé"))
        XCTAssertEqual(t["d"], .string("lit\\eral"))
        XCTAssertEqual(t["e"], .array([.integer(1), .integer(2), .integer(3)]))
        XCTAssertEqual(t["f"], .table(["g": .bool(true), "h": .string("i")]))
        XCTAssertEqual(t["m"], .string("two\nlines"), "multi-line strings are TOML and harmless")
        XCTAssertEqual(t["s"], .table(["t": .table(["u": .table(["v": .bool(false)])])]))
    }

    /// Syntax errors carry TOMLKit's line and column.
    func testErrorsNameTheLineAndColumn() {
        func message(_ text: String) -> String {
            do { _ = try TOMLDocument(text, source: "f.toml"); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message("a = 1\nb = \"open\n").hasPrefix("f.toml:2:10: invalid TOML (string)"), message("a = 1\nb = \"open\n"))
        XCTAssertEqual(message("a = 1\na = 2"), "f.toml:2:1: invalid TOML (key-value pair): cannot redefine existing integer 'a'")
        XCTAssertEqual(message("a = hello"), "f.toml:1:5: invalid TOML (value): could not determine value type (strings need quotes)")
        XCTAssertTrue(message("a = 1 b = 2").hasPrefix("f.toml:1:7: "), message("a = 1 b = 2"))
        XCTAssertTrue(message("[train\nlr = 1").hasPrefix("f.toml:1:7: invalid TOML (table header)"), message("[train\nlr = 1"))
        XCTAssertTrue(message("keep = 007").contains("leading zeroes"), "TOML's integers, not Swift's")
        do {
            _ = try TOMLDocument("x = 1\ny = [1,,2]\n", source: "f.toml")
            XCTFail("accepted")
        } catch let e as ConfigError {
            guard case .parse(let source, let line, let column, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual([source, "\(line)", "\(column)"], ["f.toml", "2", "8"])
            XCTAssertEqual(e.position, SourcePosition(line: 2, column: 8))
        } catch {
            XCTFail("\(error)")
        }
        // toml++ 3.4.0 asserts on a table header whose key starts with anything
        // but a key character or a quote (found by the fuzzer): refused first.
        for bad in ["[\u{11}compression]", "[[[x]]]", "[.x]", "[=]", "[\nx]", "[ é]", "[[ #]]", "[\u{7F}]"] {
            XCTAssertTrue(message("a = 1\n" + bad + "\n").hasPrefix("f.toml:2:"), "\(bad.debugDescription): \(message("a = 1\n" + bad))")
        }
        for bad in ["a = [ },", "a = [1, }", "a = [\u{2028}1]", "a = [\u{85}]", "a = 1979-05-27 1", "a = [1979-05-27 1]", "a = 1979-05-27 1 # x",
                    "a = 1979-05_-27 1,", "a = 19'9-05-27 0", "a = x9zz-05-27 3"] {
            XCTAssertTrue(message("x = 1\n" + bad + "\n").hasPrefix("f.toml:2:"), "\(bad.debugDescription): \(message("x = 1\n" + bad + "\n"))")
        }
        // The same at the very end of the file (the fuzzer's finding had a newline; this has none).
        XCTAssertTrue(message("x = 1\na = 1979-05-27 1").hasPrefix("f.toml:2:"), message("x = 1\na = 1979-05-27 1"))
        XCTAssertEqual(try TOMLDocument("a = 1979-05-27 07:32:00\nb = [\n  # c\n  1979-05-27 07:32:00, ]", source: "d").root,
                       ["a": .dateTime("1979-05-27T07:32:00"), "b": .array([.dateTime("1979-05-27T07:32:00")])])
        XCTAssertEqual(try TOMLDocument("a = 1979-05-27T07:32:00-07:30\nb = 07:32:00\nc = 1979-05-27\nd = 1979-05-27T00:00:00Z", source: "d").root,
                       ["a": .dateTime("1979-05-27T07:32:00-07:30"), "b": .dateTime("07:32:00"), "c": .dateTime("1979-05-27"),
                        "d": .dateTime("1979-05-27T00:00:00Z")])
        XCTAssertEqual(message("\u{FEFF}[=]"), "f.toml:1:2: invalid TOML (table header): expected a key, saw '='", "after a byte order mark too")
        XCTAssertEqual(message("[\u{11}compression]"), "f.toml:1:2: invalid TOML (table header): expected a key, saw control character 0x11")
        XCTAssertEqual(message("[[ é]]"), "f.toml:1:4: invalid TOML (table header): expected a key, saw 'é'")
        // TOMLKit passes C strings: a NUL would cut the text or a string short.
        XCTAssertEqual(message("a = 1\nb = \"x\0y\""), "f.toml:2:7: a NUL byte (TOML allows no control characters)")
        XCTAssertTrue(message("b = \"x\\u0000y\"").hasPrefix("f.toml:1:7: a string holds \\u0000 (NUL)"), message("b = \"x\\u0000y\""))
    }

    /// Nesting is bounded before TOMLKit sees the text (toml++ bounds nested
    /// values at 256 levels, but not dotted keys or table headers, and frees
    /// nested tables recursively): a deep file is an error naming the line
    /// and column, not a stack overflow.
    func testNestingDepthIsBounded() throws {
        func message(_ text: String) -> String {
            do { _ = try Config.parse(text, source: "deep.toml"); return "" } catch { return "\(error)" }
        }
        let deep = 100_000
        for text in ["x = 1\na = " + String(repeating: "[", count: deep) + String(repeating: "]", count: deep),
                     "x = 1\na = " + String(repeating: "{b = ", count: deep) + "1" + String(repeating: "}", count: deep),
                     "x = 1\n" + Array(repeating: "k", count: deep).joined(separator: ".") + " = 1",
                     "x = 1\n[" + Array(repeating: "k", count: deep).joined(separator: ".") + "]",
                     "x = 1\n[[" + Array(repeating: "k", count: deep).joined(separator: ".") + "]]",
                     "x = 1\na = { " + Array(repeating: "b", count: deep).joined(separator: ".") + " = 1 }"] {
            let m = message(text)
            XCTAssertTrue(m.hasPrefix("deep.toml:2:") && m.contains("more than \(TOMLDocument.maxDepth) levels"), String(m.prefix(200)))
        }
        // Exactly the limit is fine: the innermost 1 sits at level 32.
        let limit = TOMLDocument.maxDepth
        let t = try TOMLDocument("a = " + String(repeating: "[", count: limit - 1) + "1" + String(repeating: "]", count: limit - 1), source: "ok.toml")
        XCTAssertNotNil(t.root["a"])
        XCTAssertEqual(message("a = " + String(repeating: "[", count: limit) + "1" + String(repeating: "]", count: limit)),
                       "deep.toml:1:\(5 + limit): values nest more than 32 levels deep (tables, dotted keys, arrays and inline tables)")
        XCTAssertTrue(message("[s]\na = {b = {c = " + String(repeating: "[", count: limit - 3) + "1" + String(repeating: "]", count: limit - 3) + "}}")
            .contains("levels"), "table headers and inline-table keys count")
        // Brackets inside strings and comments are not nesting.
        let quoted = "a = \"" + String(repeating: "[", count: 100) + "\" # " + String(repeating: "{", count: 100) + "\n"
        XCTAssertEqual(try TOMLDocument(quoted, source: "q.toml").root["a"], .string(String(repeating: "[", count: 100)))
        // A deep --set value is not TOML the override can use: a string, refused by a number key.
        var c = Config()
        XCTAssertThrowsError(try c.apply(override: "train.lr=" + String(repeating: "[", count: deep))) { e in
            XCTAssertTrue("\(e)".hasPrefix("command line: key 'train.lr' must be a number, not string"), String("\(e)".prefix(200)))
        }
    }

    /// Floats survive the canonical form bit for bit: Swift writes the
    /// shortest round-trip digits, TOMLKit (toml++ through strtod) reads them
    /// back, and agrees with Swift's reading of decimal text.
    func testFloatsRoundTripThroughTOMLKit() throws {
        var rng = SystemRandomNumberGenerator()
        var values: [Double] = [0.05, 0.9, 0.0001, 1e-05, 65536, 16_777_216, 1e-6, 1e12, 2e12, 0.1, 0.2, 0.3, 1.0 / 3, .leastNonzeroMagnitude,
                                .leastNormalMagnitude, .greatestFiniteMagnitude, 123456789.123456789, -0.0, 0.001, 2.5]
        for _ in 0..<2000 { values.append(Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF)) }
        for _ in 0..<1000 { values.append(Double.random(in: 0..<1000, using: &rng)) }
        let text = values.enumerated().map { "v\($0) = \(tomlFloat($1))" }.joined(separator: "\n")
        let doc = try TOMLDocument(text, source: "f.toml")
        for (n, v) in values.enumerated() {
            guard case .float(let back)? = doc.root["v\(n)"] else { return XCTFail("v\(n) = \(tomlFloat(v)) did not read as a float") }
            XCTAssertEqual(back.bitPattern, v.bitPattern, "\(tomlFloat(v))")
        }
        // Decimal text as people write it: TOMLKit and Swift read the same double.
        var decimals = ["0.05", "0.9", "1e-3", "2.5e-3", "123.456e7", "0.30000000000000004", "9007199254740993.0", "1.7976931348623157e308"]
        for _ in 0..<2000 {
            let digits = (0..<Int.random(in: 1...20, using: &rng)).map { _ in String(Int.random(in: 0...9, using: &rng)) }.joined()
            decimals.append("\(Int.random(in: 1...9, using: &rng)).\(digits)e\(Int.random(in: -30...30, using: &rng))")
        }
        let doc2 = try TOMLDocument(decimals.enumerated().map { "v\($0) = \($1)" }.joined(separator: "\n"), source: "d.toml")
        for (n, d) in decimals.enumerated() {
            guard case .float(let back)? = doc2.root["v\(n)"] else { return XCTFail(d) }
            XCTAssertEqual(back.bitPattern, Double(d)!.bitPattern, d)
        }
    }
}

final class ConfigTests: XCTestCase {
    func testDefaultsRoundTripThroughCanonicalForm() throws {
        let c = Config()
        let again = try Config.parse(c.canonicalTOML, source: "canonical")
        XCTAssertEqual(again, c)
        XCTAssertEqual(again.hash, c.hash)
    }

    func testExampleFileIsTheDefault() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let c = try Config.load(path: root.appendingPathComponent("examples/fashion-mlp.toml").path)
        XCTAssertEqual(c, Config(), "examples/fashion-mlp.toml drifted from the built-in defaults")
        XCTAssertEqual(c.model.layers, [.dense(256), .relu, .dense(128), .relu, .dense(10)])
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
        XCTAssertEqual(a.train.lr, 0.2)
        XCTAssertEqual(a.data.kind.rawValue, "synthetic")
        XCTAssertThrowsError(try a.apply(override: "train.lr")) { e in XCTAssertTrue("\(e)".contains("key=value")) }
        XCTAssertThrowsError(try a.apply(override: "train.nope=1")) { e in XCTAssertTrue("\(e)".contains("train.nope")) }
        for bad in ["=1", " = 1", ".=1", "...=2"] {   // trapped on an empty key (found by the config fuzzer's --set path)
            XCTAssertThrowsError(try a.apply(override: bad), bad) { e in XCTAssertTrue("\(e)".contains("unknown configuration key"), "\(e)") }
        }
        let d = a.differences(from: Config())
        XCTAssertEqual(d.map { $0.key }, ["data.kind", "train.lr"])
        XCTAssertNotEqual(a.hash, Config().hash)
    }

    func message(_ text: String, source: String = "b.toml") -> String {
        do { _ = try Config.parse(text, source: source); return "" } catch { return "\(error)" }
    }

    /// `key = value` as a file of its section.
    func file(_ key: String, _ value: ConfigValue) -> String {
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
            var outside: [ConfigValue]
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
                let v: ConfigValue = f.kind == .integer ? .integer(Int(end)) : .float(end)
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
        XCTAssertTrue(message("[model]\ninput = 1099511627776\n").contains("key 'model.input' must be a positive integer or an array of 1 to 3 integers in [1, 1048576]"))
        XCTAssertTrue(message("[model]\ninput = [64, 128, 256]\n").contains("model.input = [64, 128, 256] has 2097152 elements per sample, more than the 1048576 allowed"))
        // 1024 x 1048576 weights: 2^30 parameters.
        let big = message("[model]\ninput = 1024\n" + layers([1 << 20, 10]).dropFirst(8))
        XCTAssertTrue(big.contains("has 1085276170 parameters, more than the 268435456 (2^28) allowed"), big)
        // 2^20 rows of a 1024-wide layer: 2^30 activations.
        let acts = message("[train]\nbatch_size = 1048576\n" + layers([1024, 10]))
        XCTAssertTrue(acts.contains("train.batch_size = 1048576 rows per step with a layer 1024 wide needs an activation buffer of 1048576 x 1024"), acts)
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
        XCTAssertEqual(try m.configuration(folder: "/r/step-5"), Config())
        m.config = Config().canonicalTOML.replacingOccurrences(of: "input = 784", with: "input = 1099511627776")
        XCTAssertThrowsError(try m.configuration(folder: "/r/step-5")) { e in
            XCTAssertTrue("\(e)".hasPrefix("/r/step-5/manifest.json (config):2:1: key 'model.input' must be a positive integer"), "\(e)")
        }
        m.config = Config().canonicalTOML.replacingOccurrences(of: "lr = 0.05", with: "lr = nan")
        XCTAssertThrowsError(try m.configuration(folder: "/r/step-5")) { e in XCTAssertTrue("\(e)".contains("train.lr = nan"), "\(e)") }
    }

    /// Wrong types, unknown keys and bad layers name the line and column
    /// where the file defines the key (TOMLKit 0.6.0 gives positions only for
    /// syntax errors; the pre-scan notes where each key is). Values checked
    /// after reading (ranges, rules across keys) name the key only.
    func testMessagesAboutValuesHaveLineAndColumn() {
        XCTAssertEqual(message("# job\n[train]\n\nepochs = \"ten\"\n", source: "x.toml"),
                       "x.toml:4:1: key 'train.epochs' must be an integer, not string \"ten\"")
        XCTAssertEqual(message("run = { poll = 5 }", source: "x.toml"), "x.toml:1:9: key 'run.poll' must be a string, not integer 5")
        XCTAssertEqual(message("[train]\n  lrr = 0.1\n", source: "x.toml"), "x.toml:2:3: unknown configuration key 'train.lrr'; did you mean 'train.lr'?")
        XCTAssertEqual(message("[train]\nprecision = \"fp8\"\n", source: "x.toml"),
                       "x.toml:2:1: train.precision must be \"fp32\", \"fp16\" or \"bf16\" (is \"fp8\")")
        XCTAssertEqual(message("[train]\nlr = 1979-05-27\n", source: "x.toml"),
                       "x.toml:2:1: key 'train.lr' must be a number, not date-time 1979-05-27", "TOML dates are read, and no key takes one")
        XCTAssertEqual(message("[[train]]\nlr = 0.1\n", source: "x.toml"), "x.toml:1:3: key 'train' must be a table ([train]), not array [{ lr = 0.1 }]")
        XCTAssertEqual(message("[train]\nlr = inf\n", source: "x.toml"),
                       "x.toml: train.lr = inf is out of range: it must be a finite number in (0, 1000]", "the documented shape, no position")
        do {
            _ = try Config.parse("[train]\nepochs = true\n", source: "x.toml")
            XCTFail("accepted")
        } catch let e as ConfigError {
            XCTAssertEqual(e, .wrongType(source: "x.toml", key: "train.epochs", at: SourcePosition(line: 2, column: 1), expected: "an integer", given: .bool(true)))
        } catch {
            XCTFail("\(error)")
        }
    }

    /// An unknown layer type is an error naming the file, the entry, the type
    /// and the known types; nothing stands in for it.
    func testUnknownLayerTypeIsAnError() throws {
        let text = "[model]\nlayers = [\n  { type = \"dense\", units = 64 },\n  { type = \"conv\" },\n  { type = \"dense\", units = 10 },\n]\n"
        XCTAssertThrowsError(try Config.parse(text, source: "net.toml")) { e in
            XCTAssertEqual(e as? ConfigError, .badLayer(source: "net.toml", index: 1, at: SourcePosition(line: 4, column: 3),
                                                        problem: .kind(.unknownType("conv", known: LayerKinds.types))))
            XCTAssertEqual("\(e)", "net.toml:4:3: model.layers[1] has unknown type 'conv' (known: \(LayerKinds.types.joined(separator: ", ")))")
        }
        var c = Config()
        XCTAssertThrowsError(try c.apply(override: "model.layers=[{type=\"dense\", units=8}, {type=\"pool\"}]")) { e in
            XCTAssertEqual("\(e)", "command line: model.layers[1] has unknown type 'pool' (known: \(LayerKinds.types.joined(separator: ", ")))")
        }
        XCTAssertEqual(c, Config(), "a refused override changes nothing")
        // Arrays of tables are TOML too, and read as the same layers.
        let tables = try Config.parse("[[model.layers]]\ntype = \"dense\"\nunits = 64\n[[model.layers]]\ntype = \"relu\"\n"
                                      + "[[model.layers]]\ntype = \"dense\"\nunits = 10\n", source: "t.toml")
        XCTAssertEqual(tables.model.layers, [.dense(64), .relu, .dense(10)])
        XCTAssertEqual(message("[[model.layers]]\ntype = \"dense\"\nunits = 64\n[[model.layers]]\ntype = \"lstm\"\n", source: "t.toml"),
                       "t.toml:4:1: model.layers[1] has unknown type 'lstm' (known: \(LayerKinds.types.joined(separator: ", ")))")
    }

    /// run.toml and checkpoint manifests written by the hand-written reader's
    /// Config embed this text and ranks compare its XXH64: both are pinned
    /// to what that code wrote (captured from it at d322356/ecfef60; the
    /// [train] keys after `precision` came with the optimizers of issue 12,
    /// the table keys with issue 13, train.init_from with issue 21,
    /// train.alpha and train.centered (RMSprop) with issue 22; each new
    /// key changes the hash, which only ranks of one build compare).
    func testCanonicalFormIsPinned() throws {
        XCTAssertEqual(Config().canonicalTOML, Self.withDataFormatKeys(Self.defaultCanonical))
        XCTAssertEqual(String(Config().hash, radix: 16), "b97d4be838689946")
        var c = Config()
        for o in Self.overrides { try c.apply(override: o) }
        XCTAssertEqual(c.canonicalTOML, Self.withDataFormatKeys(Self.overriddenCanonical))
        XCTAssertEqual(String(c.hash, radix: 16), "6b83f0baa015353f")
        // And the old text reads back as the same configuration.
        XCTAssertEqual(try Config.parse("# pstrain run configuration, resolved\n" + Self.overriddenCanonical, source: "run.toml"), c)
        XCTAssertEqual(try Config.parse(Self.defaultCanonical, source: "run.toml"), Config())
    }

    /// `pstrain ckpt export` writes model.layers into the safetensors
    /// metadata; its bytes are pinned to what the old code wrote.
    func testExportedLayersStringIsPinned() throws {
        XCTAssertEqual(Config().model.layersTOML,
                       #"[{ type = "dense", units = 256 }, { type = "relu" }, { type = "dense", units = 128 }, { type = "relu" }, { type = "dense", units = 10 }]"#)
        var c = Config()
        for o in Self.overrides { try c.apply(override: o) }
        XCTAssertEqual(c.model.layersTOML, #"[{ type = "dense", units = 1000 }, { type = "relu" }, { type = "dense", units = 10 }]"#)
        XCTAssertEqual(try Config.parse("[model]\nlayers = [{type = \"relu\"}, {type=\"dense\",units=7}]\n", source: "x").model.layersTOML,
                       #"[{ type = "relu" }, { type = "dense", units = 7 }]"#)
    }

    /// Every value a rank derives is bit for bit what the old accessors gave
    /// (captured from the old code).
    func testNumericsAreBitIdentical() throws {
        let d = Config()
        XCTAssertEqual(d.train.lr.bitPattern, 0.05.bitPattern)
        XCTAssertEqual(d.train.learningRate(step: 7, total: 100).bitPattern, 4587279811430020400)
        XCTAssertEqual(d.train.seed, 1)
        XCTAssertEqual(d.compression.settings, CodecSettings())
        XCTAssertEqual(d.compression.settings.linkBytesPerSecond, 1_250_000_000)
        XCTAssertEqual(d.scaler.settings, LossScaler.Settings())
        var c = Config()
        for o in Self.overrides { try c.apply(override: o) }
        XCTAssertEqual(c.train.seed, 18446744073709551613, "train.seed = -3 as a bit pattern")
        XCTAssertEqual(c.train.seed, c.train.seed)
        XCTAssertEqual(c.train.learningRate(step: 3, total: 10).bitPattern, 4594888619546990425)
        XCTAssertEqual(c.train.momentum.bitPattern, 0.0.bitPattern)
        XCTAssertEqual(c.train.weightDecay.bitPattern, 1e-5.bitPattern)
        XCTAssertEqual(c.compression.settings.topk, 0.01)
        XCTAssertEqual(c.compression.settings.linkBytesPerSecond, 12_500_000_000)
        XCTAssertFalse(c.compression.settings.shuffle)
        XCTAssertEqual(c.scaler.settings.initialScale, 1024)
        XCTAssertEqual(c.scaler.settings.backoffFactor, 0.25)
        XCTAssertEqual(c.run.timeoutSeconds.bitPattern, 0.001.bitPattern)
        XCTAssertEqual(c.train.precision, .fp16)
        XCTAssertEqual(c.debug.dieAtSteps, [3, 5])
        XCTAssertEqual(c.debug.dieInCheckpoint?.step, 4)
        XCTAssertEqual(c.debug.dieInCheckpoint?.point, "after-files")
        XCTAssertEqual(try Config.parse("[train]\nseed = -9223372036854775808\n", source: "s").train.seed, 1 << 63)
    }

    /// The sections are typed, and the compatibility accessors forward to them.
    func testSections() throws {
        let c = try Config.parse("""
            [data]
            kind = "synthetic"
            [train]
            lr_schedule = "constant"
            precision = "bf16"
            [run]
            poll = "sleep"
            [checkpoint]
            every_steps = 5
            """, source: "s.toml")
        XCTAssertEqual(c.data.kind, .synthetic)
        XCTAssertEqual(c.data.kind.rawValue, "synthetic")
        XCTAssertEqual(c.train.lrSchedule, .constant)
        XCTAssertEqual(c.train.lrSchedule.rawValue, "constant")
        XCTAssertEqual(c.train.learningRate(step: 5, total: 10), c.train.lr)
        XCTAssertEqual(c.train.precision, .bf16)
        XCTAssertEqual(c.run.poll, .sleep)
        XCTAssertEqual(c.run.poll.rawValue, "sleep")
        XCTAssertTrue(c.checkpoint.due(after: 10, total: 12) && c.checkpoint.due(after: 10, total: 12))
        XCTAssertFalse(c.checkpoint.due(after: 11, total: 12))
        XCTAssertEqual(c.compression.settings, c.compression.settings)
        XCTAssertEqual(c.scaler.settings, c.scaler.settings)
        XCTAssertEqual(Config.schema.map { $0.key }.count, 81)
        XCTAssertEqual(Config.schema.first { $0.key == "model.layers" }?.defaultValue.description,
                       Config().model.layersTOML)
    }

    /// The test hooks are a section of their own whose defaults do nothing;
    /// their texts are checked when read.
    func testDebugSectionIsInertByDefault() throws {
        let d = Config().debug
        XCTAssertTrue(d.isInert)
        XCTAssertEqual(d.dieAtSteps, [])
        XCTAssertNil(d.dieInCheckpoint)
        XCTAssertEqual(d.slowWorker, -1)
        XCTAssertEqual(d.overflowStep, -1)
        XCTAssertEqual(d.corruptStep, -1)
        XCTAssertFalse(d.digestEveryStep)
        XCTAssertFalse((0..<100).contains { step in (0..<8).contains { d.spoilsGradient(step: step, worker: $0) } })
        var c = Config()
        try c.apply(override: "debug.overflow_step=3")
        XCTAssertFalse(c.debug.isInert)
        XCTAssertTrue(c.debug.spoilsGradient(step: 3, worker: 0) && !c.debug.spoilsGradient(step: 4, worker: 0))
        try c.apply(override: "debug.die_at_steps=17")
        XCTAssertEqual(c.debug.dieAtSteps, [17])
        XCTAssertThrowsError(try c.apply(override: "debug.die_at_steps=3,x")) { e in
            XCTAssertEqual("\(e)", "command line: debug.die_at_steps must be step numbers separated by commas, such as \"3, 5\" (is \"3,x\")")
        }
        XCTAssertThrowsError(try c.apply(override: "debug.die_in_checkpoint=4:after-lunch")) { e in
            XCTAssertTrue("\(e)".contains("after-files, after-manifest or after-rename"), "\(e)")
        }
        XCTAssertEqual(c.debug.dieAtSteps, [17], "a refused override changes nothing")
    }

    /// `--set`: TOML value syntax; a bare word is a string; a string key takes
    /// the text as written.
    func testOverrideValueSyntax() throws {
        func after(_ o: String) throws -> Config { var c = Config(); try c.apply(override: o); return c }
        XCTAssertEqual(try after("train.lr=1").train.lr, 1.0)
        XCTAssertEqual(try after("train.lr=1_000").train.lr, 1000)
        XCTAssertEqual(try after("train.seed=0x10").train.seed, 16)
        XCTAssertEqual(try after("data.dir=a b").data.dir, "a b")
        XCTAssertEqual(try after("data.dir=[1]").data.dir, "[1]")
        XCTAssertEqual(try after("data.dir=\"quoted\"").data.dir, "quoted")
        XCTAssertEqual(try after("run.poll='spin'").run.poll, .spin)
        XCTAssertEqual(try after("debug.die_at_steps=").debug.dieAtStepsText, "")
        XCTAssertEqual(try after("train.precision=\"fp16\"").train.precision, .fp16)
        XCTAssertThrowsError(try after("train.lr=\"0.1\"")) { e in
            XCTAssertEqual("\(e)", "command line: key 'train.lr' must be a number, not string \"0.1\"")
        }
        XCTAssertThrowsError(try after("compression.shuffle=yes")) { e in
            XCTAssertEqual("\(e)", "command line: key 'compression.shuffle' must be true or false, not string \"yes\"")
        }
        XCTAssertThrowsError(try after("data.kind=5")) { e in
            XCTAssertEqual("\(e)", "command line: data.kind must be \"fashion-mnist\" or \"synthetic\" (is \"5\")")
        }
        XCTAssertThrowsError(try after("bogus=1")) { e in
            XCTAssertEqual("\(e)", "command line: unknown configuration key 'bogus'; known sections: model, data, train, scaler, compression, checkpoint, run, debug")
        }
        var c = Config()
        XCTAssertThrowsError(try c.apply(override: "run.timeout_seconds=inf"))
        XCTAssertEqual(c, Config(), "a refused override changes nothing")
        XCTAssertEqual(c.source, "defaults")
    }

    /// A layer table written `{ units = N, type = "dense" }` reads as before;
    /// the canonical form writes its keys in the one order, type first (the
    /// old reader kept the file's order; TOMLKit keeps none).
    func testLayerKeyOrderIsCanonical() throws {
        let c = try Config.parse("[model]\nlayers = [{units = 5, type = \"dense\"}, {type = \"relu\"}, { type = \"dense\", units = 10 }]\n", source: "u")
        XCTAssertEqual(c.model.layers, [.dense(5), .relu, .dense(10)])
        XCTAssertEqual(c.model.layersTOML, #"[{ type = "dense", units = 5 }, { type = "relu" }, { type = "dense", units = 10 }]"#)
    }

    static let overrides = ["train.lr=0.2", "data.kind=synthetic", "train.seed=-3", "train.precision=\"fp16\"", "compression.topk=0.01",
                            "debug.die_at_steps=3, 5", "debug.die_in_checkpoint=\"4:after-files\"", "data.dir=/tmp/a\"b\\c é",
                            "model.layers=[{type=\"dense\", units=1000}, {type=\"relu\"}, {type=\"dense\", units=10}]",
                            "scaler.initial=1024", "run.timeout_seconds=1e-3", "checkpoint.every_seconds=2.5", "compression.link_gbps=100",
                            "run.poll=spin", "compression.shuffle=false", "scaler.backoff_factor=0.25", "train.momentum=0.0", "train.weight_decay=1e-5"]

    /// The data-format keys (data.format ... data.validation) at their
    /// defaults, as the canonical form writes them after the keys that
    /// were there before them.
    static func withDataFormatKeys(_ old: String) -> String {
        withTableKeys(old).replacingOccurrences(of: "synthetic_test = 1024\n", with: """
            synthetic_test = 1024
            format = "idx"
            train = ""
            test = ""
            label = "label"
            classes = 0
            normalize = "auto"
            mean = 0.286
            std = 0.353
            validation = 0.0

            """)
    }

    /// The keys of embedding tables (issue 13: model.loss, model.tables,
    /// train.sparse_optimizer, train.sparse_lr, train.consistency,
    /// train.staleness, and the test hook debug.die_server) at their defaults.
    static func withTableKeys(_ old: String) -> String {
        old.replacingOccurrences(of: "]\n\n[data]\n", with: "]\nloss = \"softmax\"\ninteraction = \"none\"\ntables = []\n\n[data]\n")
            .replacingOccurrences(of: "microbatch = 0\n", with: "microbatch = 0\nsparse_optimizer = \"adagrad\"\nsparse_lr = 0.0\nconsistency = \"bsp\"\nstaleness = 2\n")
            .replacingOccurrences(of: "die_worker = 0\n", with: "die_worker = 0\ndie_server = -1\n")
            .replacingOccurrences(of: "max_steps = 0\n", with: "max_steps = 0\ninit_from = \"\"\n")   // issue 21
            .replacingOccurrences(of: "eps = 0.0\n", with: "eps = 0.0\nalpha = 0.99\ncentered = false\n")   // issue 22: RMSprop
    }

    /// Config().canonicalTOML as the hand-written reader's Config wrote it
    /// (before the data-format keys, which withDataFormatKeys adds).
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
optimizer = "sgd"
nesterov = false
beta1 = 0.9
beta2 = 0.999
eps = 0.0
clip_norm = 0.0
warmup_steps = 0
lr_step_every = 0
lr_gamma = 0.1
accumulate = 1
microbatch = 0

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
optimizer = "sgd"
nesterov = false
beta1 = 0.9
beta2 = 0.999
eps = 0.0
clip_norm = 0.0
warmup_steps = 0
lr_step_every = 0
lr_gamma = 0.1
accumulate = 1
microbatch = 0

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
        let daemons = "ORTE was unable to reliably start one or more daemons."
        XCTAssertTrue(explainMpirunFailure(daemons, plan: p)!.contains("every host in h is reachable"))
        XCTAssertTrue(explainMpirunFailure("bash: orted: command not found", plan: p)!.contains("remote hosts"))
        // "aborted" holds "orted"; and without a hostfile no daemon runs elsewhere (issue 21).
        XCTAssertNil(explainMpirunFailure("data set file not found: /x.gz\nmpirun has aborted the job", plan: p))
        var local = p
        local.hostfile = nil
        XCTAssertNil(explainMpirunFailure(daemons, plan: local))
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
