import PSNumerics
import PSCheckpoint

/// Every rank but server 0 -> server 0, once its file of a checkpoint is
/// written: its size and SHA-256, or why it could not be written.
///
/// Payload (480 bytes): f64 1 (written) or 0 (failed) at 0, f64 byte count
/// at 8, the SHA-256 as 64 hex characters at 16, and the error text (UTF-8,
/// at most 399 bytes, zero-padded) at 80.
public struct CheckpointReport: ControlMessage, Equatable {
    public static let kind = FrameKind.checkpointReport
    public static let payloadBytes = 480
    static let shaOffset = 16, errorOffset = 80, errorBytes = 399

    public var result: Result<CheckpointFileInfo, CheckpointFailure>

    public init(_ result: Result<CheckpointFileInfo, CheckpointFailure>) { self.result = result }

    public func encode(into p: UnsafeMutableRawPointer) {
        switch result {
        case .success(let r):
            p.storeF64(1, at: 0)
            p.storeF64(Double(r.bytes), at: 1)
            for (i, c) in r.sha256.utf8.prefix(64).enumerated() { p.storeBytes(of: c, toByteOffset: Self.shaOffset + i, as: UInt8.self) }
        case .failure(let e):
            // Cut at a character boundary, so the text stays valid UTF-8.
            var i = 0
            for u in e.message.unicodeScalars {
                let bytes = Array(String(u).utf8)
                if i + bytes.count > Self.errorBytes { break }
                for c in bytes { p.storeBytes(of: c, toByteOffset: Self.errorOffset + i, as: UInt8.self); i += 1 }
            }
        }
    }

    public static func decode(from p: UnsafeRawPointer) throws -> CheckpointReport {
        if p.loadF64(at: 0) == 1 {
            let bytes = p.loadF64(at: 1)
            guard bytes >= 0 && bytes <= Double(Int.max / 2) && bytes == bytes.rounded() else {
                throw FrameError.impossible(message: "checkpoint report", problem: "claims a file of \(bytes) bytes")
            }
            let sha = String(decoding: (0..<64).map { p.load(fromByteOffset: shaOffset + $0, as: UInt8.self) }, as: UTF8.self)
            return CheckpointReport(.success(CheckpointFileInfo(bytes: Int(bytes), sha256: sha)))
        }
        let text = (0...errorBytes).map { p.load(fromByteOffset: errorOffset + $0, as: UInt8.self) }.prefix { $0 != 0 }
        return CheckpointReport(.failure(CheckpointFailure(message: String(decoding: text, as: UTF8.self))))
    }
}

/// Why a rank could not write its checkpoint file.
public struct CheckpointFailure: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(message: String) { self.message = message }
    public init(_ error: Error) { message = "\(error)" }
    public var description: String { message }
}
