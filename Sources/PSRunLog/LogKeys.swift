// ---------------------------------------------------------------------------
// The log's key strategy: a record's Swift property names are camelCase, its
// keys in the log snake_case (`peakRSSBytes` is written `peak_rss_bytes`).
// `LogFieldEncoder` writes every key through `logKey(_:)`, and
// `LogFieldDecoder` reads a property by looking up `logKey` of its name, the
// same function, so reading is the exact reverse of writing for every name
// (JSONDecoder's .convertFromSnakeCase is not: it reads `peak_rss_bytes` as
// `peakRssBytes`). So the record types need no CodingKeys enum to map names;
// a type keeps one only where a key is not the plain conversion of its
// property's name, or where its hand-written coding needs the cases.
// ---------------------------------------------------------------------------

/// A coding key written and read as it is, not converted (the state
/// digests of a server's `done`, named after the optimizer's state names).
protocol LogVerbatimKey: CodingKey {}

/// The snake_case key of a camelCase name: an underscore before each
/// word, a word beginning at an upper-case letter after a lower-case one or
/// a digit, or at the last upper-case letter of a run followed by a
/// lower-case one; upper case lowered. `fp32Bytes`: `fp32_bytes`,
/// `peakRSSBytes`: `peak_rss_bytes`, `samplesPerS`: `samples_per_s`. A name
/// without upper-case letters is its own key (`auc`, `momentum_digest`).
func logKey(_ name: String) -> String {
    let utf8 = name.utf8
    guard utf8.contains(where: isUpper) else { return name }
    let b = Array(utf8)
    var out: [UInt8] = []
    out.reserveCapacity(b.count + 4)
    for i in b.indices {
        let c = b[i]
        guard isUpper(c) else { out.append(c); continue }
        if i > 0 {
            let afterLower = isLower(b[i - 1]) || isDigit(b[i - 1])
            let endsRun = isUpper(b[i - 1]) && i + 1 < b.count && isLower(b[i + 1])
            if afterLower || endsRun { out.append(UInt8(ascii: "_")) }
        }
        out.append(c + 32)
    }
    return String(decoding: out, as: UTF8.self)
}

/// The key `key` has in the log.
func logKey<Key: CodingKey>(_ key: Key, verbatim: Bool) -> String { verbatim ? key.stringValue : logKey(key.stringValue) }

private func isUpper(_ c: UInt8) -> Bool { c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") }
private func isLower(_ c: UInt8) -> Bool { c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") }
private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
