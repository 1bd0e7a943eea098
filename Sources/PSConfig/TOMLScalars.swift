// The TOML reader's scalars: booleans, numbers, dates and times, strings
// and their escapes.


extension TOMLReader {
    /// A boolean, number, date or time: the word up to what ends a value.
    mutating func scalar() throws -> ConfigValue {
        let start = offset
        func isWord(_ c: UInt8) -> Bool {
            TOMLReader.isBareKey(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: ":")
        }
        while isWord(peek) { i += 1 }
        // A date, one space and a time: "1979-05-27 07:32:00".
        if i - start.at == 10, s[start.at + 4] == UInt8(ascii: "-"), peek == 0x20,
           TOMLReader.isDigit(peek(1)), TOMLReader.isDigit(peek(2)), peek(3) == UInt8(ascii: ":") {
            i += 1
            while isWord(peek) { i += 1 }
        }
        let word = Array(s[start.at..<i])
        func bad(_ what: String, _ why: String) -> ConfigError { error(what, why, at: start) }
        let text = String(decoding: word, as: UTF8.self)
        switch text {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        guard let first = word.first, TOMLReader.isDigit(first) || first == UInt8(ascii: "+") || first == UInt8(ascii: "-") else {
            throw bad("value", "could not determine value type (strings need quotes)")
        }
        let isTime = word.count >= 3 && word[0..<2].allSatisfy(TOMLReader.isDigit) && word[2] == UInt8(ascii: ":")
        let isDate = word.count >= 5 && word[0..<4].allSatisfy(TOMLReader.isDigit) && word[4] == UInt8(ascii: "-")
        if isTime || isDate {
            guard let d = TOMLReader.dateTime(word) else {
                throw bad("date-time", "'\(text)' is not a date (YYYY-MM-DD), a time (HH:MM:SS) or a date and time with an optional offset")
            }
            return .dateTime(d)
        }
        return try TOMLReader.number(word, text) { bad($0, $1) }
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// Digits of `radix` with single underscores between them; nil if `w`
    /// breaks that rule.
    static func digits(_ w: ArraySlice<UInt8>, radix: Int) -> [UInt8]? {
        var out: [UInt8] = []
        var lastWasDigit = false
        for c in w {
            if c == UInt8(ascii: "_") {
                guard lastWasDigit else { return nil }
                lastWasDigit = false
                continue
            }
            let v: Int
            switch c {
            case 0x30...0x39: v = Int(c - 0x30)
            case 0x61...0x66: v = Int(c - 0x61 + 10)
            case 0x41...0x46: v = Int(c - 0x41 + 10)
            default: return nil
            }
            guard v < radix else { return nil }
            out.append(UInt8(v))
            lastWasDigit = true
        }
        return lastWasDigit ? out : nil
    }

    /// The value of digits (each below `radix`), nil past UInt64's range.
    static func value(_ ds: [UInt8], radix: Int) -> UInt64? {
        var v: UInt64 = 0
        for d in ds {
            let (m, o1) = v.multipliedReportingOverflow(by: UInt64(radix))
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1 && !o2 else { return nil }
            v = a
        }
        return v
    }

    /// An integer or a float, by TOML's grammar (not Swift's or C's).
    static func number(_ w: [UInt8], _ text: String, _ bad: (String, String) -> ConfigError) throws -> ConfigValue {
        if w.count > 2, w[0] == UInt8(ascii: "0"), let radix = [UInt8(ascii: "x"): 16, UInt8(ascii: "o"): 8, UInt8(ascii: "b"): 2][w[1]] {
            guard let ds = digits(w[2...], radix: radix) else { throw bad("integer", "'\(text)' is not a base-\(radix) integer") }
            guard let v = value(ds, radix: radix), v <= UInt64(Int64.max) else { throw bad("integer", "'\(text)' does not fit in a 64-bit integer") }
            return .integer(Int(v))
        }
        var j = 0
        let negative = w.first == UInt8(ascii: "-")
        if w.first == UInt8(ascii: "-") || w.first == UInt8(ascii: "+") { j = 1 }
        // The integer part: up to '.', 'e' or 'E'.
        var k = j
        while k < w.count && w[k] != UInt8(ascii: ".") && w[k] != UInt8(ascii: "e") && w[k] != UInt8(ascii: "E") { k += 1 }
        guard let whole = digits(w[j..<k], radix: 10) else {
            throw bad("number", "'\(text)' is not a number (digits, with single underscores between them)")
        }
        if whole.count > 1 && whole[0] == 0 { throw bad("number", "'\(text)': leading zeroes are not allowed") }
        if k == w.count {
            guard let v = value(whole, radix: 10) else { throw bad("integer", "'\(text)' does not fit in a 64-bit integer") }
            if negative {
                guard v <= UInt64(Int64.max) + 1 else { throw bad("integer", "'\(text)' does not fit in a 64-bit integer") }
                return .integer(v == UInt64(Int64.max) + 1 ? Int.min : -Int(v))
            }
            guard v <= UInt64(Int64.max) else { throw bad("integer", "'\(text)' does not fit in a 64-bit integer") }
            return .integer(Int(v))
        }
        var clean = String(decoding: w[0..<j], as: UTF8.self) + String(decoding: whole.map { $0 + 0x30 }, as: UTF8.self)
        if w[k] == UInt8(ascii: ".") {
            var e = k + 1
            while e < w.count && w[e] != UInt8(ascii: "e") && w[e] != UInt8(ascii: "E") { e += 1 }
            guard let frac = digits(w[(k + 1)..<e], radix: 10) else {
                throw bad("float", "'\(text)' needs digits after the decimal point")
            }
            clean += "." + String(decoding: frac.map { $0 + 0x30 }, as: UTF8.self)
            k = e
        }
        if k < w.count {   // an exponent
            var e = k + 1
            var sign = ""
            if e < w.count && (w[e] == UInt8(ascii: "+") || w[e] == UInt8(ascii: "-")) { sign = w[e] == UInt8(ascii: "-") ? "-" : ""; e += 1 }
            guard let exp = digits(w[e...], radix: 10) else { throw bad("float", "'\(text)' has no exponent digits") }
            // Beyond 4 significant digits an exponent only over- or underflows.
            let significant = exp.drop { $0 == 0 }
            clean += "e" + sign + (significant.count > 5 ? "99999" : (significant.isEmpty ? "0" : String(decoding: significant.map { $0 + 0x30 }, as: UTF8.self)))
        }
        guard let d = Double(clean) else { throw bad("float", "'\(text)' is not a float") }
        guard d.isFinite else { throw bad("float", "'\(text)' is beyond a 64-bit float's range (write inf for infinity)") }
        return .float(d)
    }

    /// A date, time or date-time checked field by field; as text (the
    /// separator written 'T', a zone 'Z').
    static func dateTime(_ w: [UInt8]) -> String? {
        var j = 0
        func num(_ n: Int) -> Int? {
            guard j + n <= w.count else { return nil }
            var v = 0
            for c in w[j..<(j + n)] { guard isDigit(c) else { return nil }; v = v * 10 + Int(c - 0x30) }
            j += n
            return v
        }
        func take(_ c: Character) -> Bool {
            guard j < w.count, w[j] == c.asciiValue! else { return false }
            j += 1
            return true
        }
        func time() -> Bool {
            guard let h = num(2), h < 24, take(":"), let m = num(2), m < 60, take(":"), let sec = num(2), sec <= 60 else { return false }
            if take(".") {
                let from = j
                while j < w.count && isDigit(w[j]) { j += 1 }
                if j == from { return false }
            }
            return true
        }
        var out = w
        if w.count > 2 && w[2] == UInt8(ascii: ":") {
            return time() && j == w.count ? String(decoding: w, as: UTF8.self) : nil
        }
        guard let y = num(4), take("-"), let mo = num(2), (1...12).contains(mo), take("-"), let d = num(2) else { return nil }
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]
        guard d >= 1 && d <= days else { return nil }
        if j == w.count { return String(decoding: w, as: UTF8.self) }
        guard w[j] == UInt8(ascii: "T") || w[j] == UInt8(ascii: "t") || w[j] == 0x20 else { return nil }
        out[j] = UInt8(ascii: "T")
        j += 1
        guard time() else { return nil }
        if j < w.count {
            if w[j] == UInt8(ascii: "Z") || w[j] == UInt8(ascii: "z") {
                out[j] = UInt8(ascii: "Z")
                j += 1
            } else if w[j] == UInt8(ascii: "+") || w[j] == UInt8(ascii: "-") {
                j += 1
                guard let h = num(2), h < 24, take(":"), let m = num(2), m < 60 else { return nil }
            } else {
                return nil
            }
        }
        return j == w.count ? String(decoding: out, as: UTF8.self) : nil
    }

    // MARK: strings

    /// A string of either kind, starting at its first quote: basic ("..."
    /// or """...""", escapes decoded) or literal ('...' or '''...''', taken
    /// as written).
    mutating func string(multiLine: Bool) throws -> String {
        let q = peek, basic = q == UInt8(ascii: "\"")
        i += multiLine ? 3 : 1
        if multiLine && isNewline { newline() }   // a line end right after the quotes is not content
        var bytes: [UInt8] = []
        while true {
            if atEnd { throw error("string", "the string does not end (no closing quote)") }
            let c = peek
            if c == q {
                if !multiLine { i += 1; return String(decoding: bytes, as: UTF8.self) }
                if peek(1) == c && peek(2) == c {
                    // Up to two quotes may end the contents right before the closing three.
                    var extra = 0
                    while extra < 2 && peek(3) == c { bytes.append(c); i += 1; extra += 1 }
                    i += 3
                    return String(decoding: bytes, as: UTF8.self)
                }
                bytes.append(c)
                i += 1
            } else if isNewline {
                guard multiLine else { throw error("string", "the string does not end on its line (no closing quote)") }
                bytes.append(0x0A)
                newline()
            } else if basic && c == UInt8(ascii: "\\") {
                try escape(into: &bytes, multiLine: multiLine)
            } else if TOMLReader.isAllowedText(c) {
                bytes.append(c)
                i += 1
            } else {
                throw error("string", basic ? "\(shown) must be escaped in a string" : "\(shown) is not allowed in a literal string")
            }
        }
    }

    mutating func escape(into bytes: inout [UInt8], multiLine: Bool) throws {
        let e = peek(1)
        switch e {
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let n = e == UInt8(ascii: "u") ? 4 : 8
            guard i + 2 + n <= s.count, s[(i + 2)..<(i + 2 + n)].allSatisfy({ TOMLReader.isHex($0) }) else {
                throw error("string", "\\\(Character(UnicodeScalar(e))) needs \(n) hexadecimal digits")
            }
            let digits = String(decoding: s[(i + 2)..<(i + 2 + n)], as: UTF8.self)
            guard let v = UInt32(digits, radix: 16), let u = Unicode.Scalar(v) else {
                throw error("string", "\\\(Character(UnicodeScalar(e)))\(digits) is not a Unicode scalar value")
            }
            if v == 0 {
                throw ConfigError.parse(source: source, line: line, column: TOMLReader.column(s, lineStart: lineStart, at: i),
                                        message: "a string holds \\\(Character(UnicodeScalar(e)))\(digits) (NUL), which configuration values cannot carry")
            }
            bytes.append(contentsOf: Array(String(Character(u)).utf8))
            i += 2 + n
        case UInt8(ascii: "n"): bytes.append(0x0A); i += 2
        case UInt8(ascii: "t"): bytes.append(0x09); i += 2
        case UInt8(ascii: "r"): bytes.append(0x0D); i += 2
        case UInt8(ascii: "b"): bytes.append(0x08); i += 2
        case UInt8(ascii: "f"): bytes.append(0x0C); i += 2
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(e); i += 2
        default:
            // A line-ending backslash (multi-line strings): drop the line end
            // and the blanks after it.
            if multiLine {
                var j = i + 1
                while j < s.count && (s[j] == 0x20 || s[j] == 0x09) { j += 1 }
                if j < s.count && (s[j] == 0x0A || (s[j] == 0x0D && j + 1 < s.count && s[j + 1] == 0x0A)) {
                    i = j
                    while true {
                        skipSpaces()
                        if isNewline { newline() } else { return }
                    }
                }
            }
            throw error("string", "a backslash must start one of TOML's escapes (\\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)")
        }
    }

    static func isHex(_ c: UInt8) -> Bool { isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46) }
}
