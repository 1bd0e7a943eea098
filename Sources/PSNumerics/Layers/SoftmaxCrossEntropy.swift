import Foundation

/// Softmax cross-entropy over logits (batch, classes).
public enum SoftmaxCrossEntropy {
    /// Returns the summed loss over the batch and the number of correct
    /// predictions. If `dlogits` is given, writes (softmax - onehot) * gradScale.
    @discardableResult
    public static func evaluate(logits: UnsafePointer<Float>, labels: UnsafePointer<UInt8>, batch: Int, classes: Int,
                                dlogits: UnsafeMutablePointer<Float>?, gradScale: Float) -> (lossSum: Double, correct: Int) {
        var lossSum = 0.0
        var correct = 0
        for r in 0..<batch {
            let z = logits + r * classes
            let label = Int(labels[r])
            var m = z[0]
            var arg = 0
            for j in 1..<classes where z[j] > m { m = z[j]; arg = j }
            if arg == label { correct += 1 }
            var sum: Float = 0
            for j in 0..<classes { sum += expf(z[j] - m) }
            let logSum = logf(sum) + m
            lossSum += Double(logSum - z[label])
            if let d = dlogits {
                let g = d + r * classes
                let inv = 1 / sum
                for j in 0..<classes { g[j] = expf(z[j] - m) * inv * gradScale }
                g[label] -= gradScale
            }
        }
        return (lossSum, correct)
    }
}

#if canImport(Glibc)
import Glibc
#endif
