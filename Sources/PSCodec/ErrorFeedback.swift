import PSNumerics

/// Top-k error feedback on a worker (docs/formats.md): what top-k did not
/// send, and the rounding error of what it sent, is carried into the next
/// step's gradient. It owns the residual, its backup for a step the servers
/// skip, and the residual's tensor in the worker's checkpoint file.
///
/// The residual is kept in unscaled gradient units: the loss scale of the
/// step it came from is divided out, and the next step's is multiplied in.
public final class ErrorFeedback {
    /// The name of the residual's tensor in a worker's checkpoint file.
    public static let tensorName = "residual"
    public let residual: FloatBuffer
    let backup: FloatBuffer

    public init(count: Int) {
        residual = FloatBuffer(count: count)
        backup = FloatBuffer(count: count)
    }

    /// Takes the residual back from a checkpoint written by `saved` workers.
    /// With the same number of workers each takes its own; with another
    /// number worker 0 takes the sum of them all (no gradient mass is lost)
    /// and the others start from zero. `load(j)` reads worker j's residual
    /// (nil when its file has none).
    public func restore(worker: Int, workers: Int, saved: Int, load: (Int) throws -> [Float]?) throws {
        let sources = saved == workers ? [worker] : (worker == 0 ? Array(0..<saved) : [])
        for j in sources {
            guard let r = try load(j) else { continue }
            for i in 0..<residual.count { residual.pointer[i] += r[i] }
        }
    }

    /// Before a step's push: remember the residual, for `undoStep`.
    public func beginStep() { backup.pointer.update(from: residual.pointer, count: residual.count) }

    /// The servers skipped the step: the residual goes back to what it was
    /// before it, as if that step never happened.
    public func undoStep() { residual.pointer.update(from: backup.pointer, count: residual.count) }

    /// Adds the residual of elements `lo..<lo+n` to the gradient `g` of the
    /// same elements, at loss scale `scale`.
    public func add(to g: UnsafeMutablePointer<Float>, at lo: Int, count n: Int, scale: Float) {
        let r = residual.pointer + lo
        for j in 0..<n { g[j] += r[j] * scale }
    }

    /// After `codec` encoded `g` (elements `lo..<lo+n`): everything it did
    /// not send, and the rounding error of the `kept` values it sent
    /// (`round` applies the wire format's rounding), stays behind.
    public func keep(unsent g: UnsafePointer<Float>, at lo: Int, count n: Int, scale: Float, codec: PieceCodec, kept: Int,
                     round: (UnsafeMutablePointer<Float>, Int) -> Void) {
        let r = residual.pointer + lo
        for j in 0..<n { r[j] = g[j] / scale }
        let values = codec.keptValues
        round(values, kept)
        for j in 0..<kept {
            let idx = Int(codec.selected[j])
            r[idx] = (g[idx] - values[j]) / scale
        }
    }

    /// The residual's tensor in the worker's checkpoint file: its name and values.
    public var checkpointTensor: (name: String, values: UnsafeBufferPointer<Float>) {
        (Self.tensorName, UnsafeBufferPointer(residual.buffer))
    }
}
