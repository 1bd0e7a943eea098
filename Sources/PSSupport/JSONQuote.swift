import Foundation

/// A string as a quoted JSON (and TOML basic) string literal.
public func jsonQuote(_ v: String) -> String {
    var s = "\""
    for u in v.unicodeScalars {
        switch u {
        case "\"": s += "\\\""
        case "\\": s += "\\\\"
        case "\n": s += "\\n"
        case "\r": s += "\\r"
        case "\t": s += "\\t"
        default:
            if u.value < 0x20 { s += String(format: "\\u%04x", u.value) } else { s.unicodeScalars.append(u) }
        }
    }
    return s + "\""
}
