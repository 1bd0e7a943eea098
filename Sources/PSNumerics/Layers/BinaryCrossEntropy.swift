import Foundation

/// Binary cross-entropy on one logit per row (torch.nn.BCEWithLogitsLoss):
/// loss = max(z, 0) - z y + log(1 + exp(-|z|)), dloss/dz = sigmoid(z) - y.
public enum BinaryCrossEntropy {
    /// Returns the summed loss and the rows whose prediction (z > 0) matches
    /// the label. With `dlogits`, writes (sigmoid(z) - y) x gradScale.
    @discardableResult
    public static func evaluate(logits: UnsafePointer<Float>, labels: UnsafePointer<UInt8>, batch: Int,
                                dlogits: UnsafeMutablePointer<Float>?, gradScale: Float) -> (lossSum: Double, correct: Int) {
        var lossSum = 0.0, correct = 0
        for r in 0..<batch {
            let z = logits[r], y: Float = labels[r] != 0 ? 1 : 0
            if (z > 0) == (y == 1) { correct += 1 }
            lossSum += Double(max(z, 0) - z * y + log1pf(expf(-abs(z))))
            if let d = dlogits { d[r] = (sigmoid(z) - y) * gradScale }
        }
        return (lossSum, correct)
    }

    @inline(__always)
    public static func sigmoid(_ z: Float) -> Float {
        z >= 0 ? 1 / (1 + expf(-z)) : expf(z) / (1 + expf(z))
    }
}

/// The loss a model trains on (model.loss).
public enum LossKind: String, CaseIterable, Sendable {
    /// Softmax cross-entropy over the last layer's outputs, one class label per row.
    case softmax
    /// Binary cross-entropy on one logit, labels 0 or 1 (click-through rate).
    case bce
}
