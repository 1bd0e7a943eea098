import Foundation

/// A string as a quoted JSON string literal, which is also a TOML basic
/// string: `"`, `\`, newline, return and tab escaped by name, other control
/// characters as \u00XX. `escapingDEL` escapes U+007F too, which TOML (not
/// JSON) requires.
public func jsonQuote(_ v: String, escapingDEL: Bool = false) -> String {
    var s = "\""
    for u in v.unicodeScalars {
        switch u {
        case "\"": s += "\\\""
        case "\\": s += "\\\\"
        case "\n": s += "\\n"
        case "\r": s += "\\r"
        case "\t": s += "\\t"
        default:
            if u.value < 0x20 || (escapingDEL && u.value == 0x7F) {
                s += String(format: "\\u%04x", u.value)
            } else {
                s.unicodeScalars.append(u)
            }
        }
    }
    return s + "\""
}

/// A float as TOML writes it: Swift's shortest round-trip digits, with ".0"
/// added to integral values, and inf / -inf / nan.
public func tomlFloat(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    let s = "\(d)"
    return s.contains(".") || s.contains("e") ? s : s + ".0"
}
