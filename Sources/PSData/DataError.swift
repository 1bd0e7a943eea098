import Foundation
import PSSupport

/// Why a data set cannot be used. Every case names the file.
public enum DataError: UserFacingError, Equatable {
    /// The file does not exist.
    case missing(file: String)
    /// A file a configuration key names (or one found beside it) does not exist.
    case notFound(file: String, what: String)
    /// The file exists but cannot be opened or read.
    case unreadable(file: String, reason: String)
    /// The file's content is not what its format says: `problem` tells what.
    case malformed(file: String, problem: String)
    /// Files (or halves of a set) that do not fit together.
    case mismatch(String)
    /// One field of one line of a text data set (Criteo, libsvm) is wrong:
    /// `field` names it ("C7", "label", "pair 3"), `problem` says what is
    /// wrong with it and `fix` what the format wants.
    case badRecord(file: String, line: Int, field: String, problem: String, fix: String)

    public var description: String {
        switch self {
        case .missing(let f): return "data set file not found: \(f) (install the Debian package dataset-fashion-mnist, or set data.dir)"
        case .notFound(let f, let what): return "data set file not found: \(f) (\(what))"
        case .unreadable(let f, let why): return "cannot open \(f): \(why)"
        case .malformed(let f, let problem): return "\(f): \(problem)"
        case .mismatch(let what): return what
        case .badRecord(let f, let line, let field, let problem, let fix): return "\(f) line \(line), field \(field): \(problem); \(fix)"
        }
    }
}
