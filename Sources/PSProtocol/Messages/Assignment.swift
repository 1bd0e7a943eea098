import PSNumerics

/// Server 0 -> a worker, with train.consistency = "ssp" or "async", in
/// answer to its request for work (a PullRequest of purpose assign; the
/// frame's step is the request's): train slice `slice` of step `step`'s
/// global batch, evaluate with the parameters of step `step` (after an
/// epoch), or pull the final parameters. Server 0 hands the slices of each
/// step out in turn to whichever worker asks first, so a fast worker does
/// more of them than a slow one. Payload: three f64.
public struct Assignment: ControlMessage, Equatable {
    public static let kind = FrameKind.assignment
    public static let payloadBytes = 24

    public enum Work: Int, Equatable { case train = 0, eval = 1, final = 2 }
    public var work: Work
    public var step: Int
    public var slice: Int

    public init(_ work: Work, step: Int, slice: Int = 0) { self.work = work; self.step = step; self.slice = slice }

    public func encode(into p: UnsafeMutableRawPointer) {
        p.storeF64(Double(work.rawValue), at: 0); p.storeF64(Double(step), at: 1); p.storeF64(Double(slice), at: 2)
    }

    public static func decode(from p: UnsafeRawPointer) throws -> Assignment {
        let w = p.loadF64(at: 0), step = p.loadF64(at: 1), slice = p.loadF64(at: 2)
        func whole(_ v: Double, _ hi: Double) -> Bool { v == v.rounded() && v >= 0 && v <= hi }
        guard whole(w, 2), whole(step, Double(Int32.max)), whole(slice, 65_536), let work = Work(rawValue: Int(w)) else {
            throw FrameError.impossible(message: "assignment", problem: "assigns \(w) for step \(step), slice \(slice)")
        }
        return Assignment(work, step: Int(step), slice: Int(slice))
    }
}
