import CBLAS

/// Fully connected: y = x W^T + b, W (out, in), b (out).
public final class Dense: LayerKind {
    public static let type = "dense"
    public static let keys: [LayerKey] = [.integer("units", 1...Model.maxWidth)]
    public static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer {
        guard input.count == 1 else {
            throw LayerEntryProblem.shape(type: type, "needs flat samples, but gets \(input.shapeText): put { type = \"flatten\" } before it")
        }
        return Dense(name: "layers.\(index)", inputs: input[0], outputs: entry.int("units"))
    }

    public let inputShape: [Int]
    public let outputShape: [Int]
    public let parameters: [ParamSpec]

    public init(name: String, inputs: Int, outputs: Int) {
        inputShape = [inputs]
        outputShape = [outputs]
        let bound = 1 / Float(inputs).squareRoot()
        parameters = [
            ParamSpec(name: name + ".weight", shape: [outputs, inputs], initializer: .uniform(bound: bound)),
            ParamSpec(name: name + ".bias", shape: [outputs], initializer: .uniform(bound: bound)),
        ]
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        let n = outputSize, k = inputSize
        let w = params, b = params + n * k
        // y (batch, n) = bias broadcast, then += x (batch, k) * W^T (k, n)
        for r in 0..<batch { (y + r * n).update(from: b, count: n) }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(batch), Int32(n), Int32(k),
                    1, x, Int32(k), w, Int32(k), 1, y, Int32(n))
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        let n = outputSize, k = inputSize
        let dw = grads, db = grads + n * k
        // dW (n, k) = dy^T (n, batch) * x (batch, k)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(k), Int32(batch),
                    1, dy, Int32(n), x, Int32(k), 0, dw, Int32(k))
        // db (n) = column sums of dy
        db.update(repeating: 0, count: n)
        for r in 0..<batch {
            let row = dy + r * n
            for j in 0..<n { db[j] += row[j] }
        }
        // dx (batch, k) = dy (batch, n) * W (n, k)
        if let dx {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(batch), Int32(k), Int32(n),
                        1, dy, Int32(n), params, Int32(k), 0, dx, Int32(k))
        }
    }
}
