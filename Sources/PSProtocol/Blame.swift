import Foundation

/// Who is really silent when waits time out in a cascade.
///
/// When one rank hangs, every rank that waits on it times out, and so does
/// every rank that waits on one of those: worker 0 waits for server 0's
/// parameters while server 0 waits for the gradients of a stopped worker 1.
/// Whichever deadline fires first would name its own peer, often the wrong
/// one. So a rank that times out leaves a claim in the run directory ("I,
/// rank r, waited for rank p"), gives the other ranks a grace period to leave
/// theirs, and then follows the claims from its own peer to a rank that left
/// none: that one sent nothing and is named. A cycle of claims is a
/// deadlock and is named as one.
///
/// Claims live in `<run>/.waits/<attempt>/rank-<r>`, where the attempt is
/// server 0's process id (new for every start of the job), so a restarted
/// job never reads the claims of the attempt before it.
public struct WaitClaim: Equatable {
    public var rank: Int
    public var peer: Int
    public var what: String
    public var step: Int
    public var seconds: Double

    func encode() -> String { "\(rank)\t\(peer)\t\(step)\t\(seconds)\t\(what.replacingOccurrences(of: "\n", with: " "))\n" }

    static func decode(_ s: String) -> WaitClaim? {
        let f = s.split(separator: "\t", maxSplits: 4, omittingEmptySubsequences: false)
        guard f.count == 5, let r = Int(f[0]), let p = Int(f[1]), let st = Int(f[2]), let sec = Double(f[3]) else { return nil }
        return WaitClaim(rank: r, peer: p, what: String(f[4].trimmingCharacters(in: .newlines)), step: st, seconds: sec)
    }
}

public struct WaitClaims {
    public let folder: String

    /// The claims folder of this attempt of the job in `runDir`.
    public init(runDir: String, attempt: Int32) { folder = runDir + "/.waits/\(attempt)" }

    /// Server 0 at start: removes the claims of earlier attempts.
    public static func removeStale(runDir: String, keep attempt: Int32) {
        let root = runDir + "/.waits"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where name != String(attempt) {
            try? FileManager.default.removeItem(atPath: root + "/" + name)
        }
    }

    func path(_ rank: Int) -> String { folder + "/rank-\(rank)" }

    /// Leaves this rank's claim (written whole: a temporary file renamed into place).
    public func leave(_ c: WaitClaim) {
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let tmp = path(c.rank) + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: Data(c.encode().utf8)) { rename(tmp, path(c.rank)) }
    }

    public func read(_ rank: Int) -> WaitClaim? {
        guard let d = FileManager.default.contents(atPath: path(rank)) else { return nil }
        return WaitClaim.decode(String(decoding: d, as: UTF8.self))
    }

    /// Follows the claims from `mine` to the rank that is really silent.
    /// Returns the chain of claims, the last of which waited on the culprit,
    /// and whether the chain closed on itself (a deadlock).
    public func follow(from mine: WaitClaim) -> (chain: [WaitClaim], cycle: Bool) {
        var chain = [mine]
        var seen: Set<Int> = [mine.rank]
        while let next = read(chain.last!.peer) {
            if seen.contains(next.rank) { return (chain, true) }
            seen.insert(next.rank)
            chain.append(next)
        }
        return (chain, false)
    }
}
