import PSNumerics
import PSCodec

/// A bsp server's update ahead of the step's outcome.
///
/// The outcome of a step (apply or skip after an overflow anywhere, server
/// 0's requests) is known only when the last worker's summary is in, after
/// its whole backward pass. Waiting for it before updating puts the whole
/// optimizer pass and the encoding of every piece between the workers'
/// backward and their next forward, with the workers idle. Instead each
/// piece is updated and encoded as soon as its summed gradient is in (the
/// last layers' pieces first, while the workers still compute the first
/// layers' gradients), copying its weights and optimizer state aside in the
/// same pass (Optimizer.apply(keepingIn:)).
/// When the outcome is an overflow, the copies go back and the unchanged
/// weights are sent, as without updateAhead. Either way the bits are those
/// of updating after the outcome: the same operations on the same values.
///
/// Not with train.clip_norm (the factor needs every server's whole sum),
/// embedding tables (their rows are updated at the outcome), or in ssp and
/// async (ServerAsync.swift applies each push as it arrives anyway).
/// docs/architecture.md, "updating ahead".
final class UpdateAhead {
    /// This step's encoded pieces, updated ahead (nil: not updated).
    var encoded: [EncodedPiece?]
    /// A piece of this step's sum was not finite: the step will be skipped
    /// and nothing more is updated ahead.
    var sumOverflowed = false
    /// This step's update (learning rate, gradient scale, count).
    var update = OptimizerStep(lr: 0, gradScale: 1, t: 1)
    /// 1 / the step's loss scale (running statistics are unscaled by it).
    var unscale: Float = 1
    /// The weights and optimizer state of the updated pieces before the step.
    let weights: FloatBuffer
    let state: [FloatBuffer]
    /// Whether piece k is updated ahead: not the first layer's. Its
    /// gradients come last, just before the summaries, so updating them
    /// ahead would gain nothing and cost the copies (the MLP's first layer
    /// holds 85% of its weights: 0.6 against 0.8 ms a step on the server).
    let ahead: [Bool]

    init(pieces: [ShardPlan.Piece], layout: ModelLayout, elements: Int, states: Int) {
        // Tensors are named as nn.Sequential's ("layers.0.weight"): the first layer's share its prefix.
        func layer(_ t: Int) -> Substring {
            let name = layout.tensors[t].name
            return name[..<(name.lastIndex(of: ".") ?? name.endIndex)]
        }
        let first = layout.tensors.isEmpty ? "" : layer(0)
        ahead = pieces.map { layer($0.tensor) != first }
        encoded = [EncodedPiece?](repeating: nil, count: pieces.count)
        weights = FloatBuffer(count: elements)
        state = (0..<states).map { _ in FloatBuffer(count: elements) }
    }
}

extension ServerRole {
    /// Piece k of step `step` is summed: unless the sum has overflowed so
    /// far, keep its weights and state, update it and encode parameters step + 1.
    func applyAhead(_ kept: UpdateAhead, piece k: Int, step: Int) throws {
        if k == 0 {
            kept.encoded = kept.encoded.map { _ in nil }
            kept.sumOverflowed = false
            // What applyAndSend computes, with no clipping factor.
            kept.update = OptimizerStep(lr: Float(ctx.config.train.learningRate(step: step, total: schedule.total)),
                                        gradScale: Float(1 / scaler.scale * 1.0), t: step - scaler.skipped + 1)
            kept.unscale = Float(1 / scaler.scale)
        }
        guard !kept.sumOverflowed else { return }
        let c = pieces[k], n = c.range.count, off = c.range.lowerBound - range.lowerBound
        if Payload.overflows(gradSum.pointer + off, count: n, as: .fp32) {
            kept.sumOverflowed = true
            return
        }
        guard kept.ahead[k] else { return }
        apply(piece: k, at: off, update: kept.update, unscale: kept.unscale, keepingIn: (kept.weights, kept.state))
        kept.encoded[k] = try encodePiece(k, version: step + 1)
    }

    /// The outcome is known: send the pieces updated ahead, or after an
    /// overflow put their weights and state back and send those.
    func settleUpdateAhead(_ kept: UpdateAhead, _ step: Int, _ o: StepOutcome) throws {
        if o.overflow {
            for k in pieces.indices where kept.encoded[k] != nil {
                let n = pieces[k].range.count, off = pieces[k].range.lowerBound - range.lowerBound
                (weights.pointer + off).update(from: kept.weights.pointer + off, count: n)
                for (copy, s) in zip(kept.state, state) { (s.pointer + off).update(from: copy.pointer + off, count: n) }
            }
        }
        for k in pieces.indices.reversed() {
            if !o.overflow, let e = kept.encoded[k] {
                try sealAndSend(k, version: step + 1, encoded: e, request: o.request)
            } else {
                // Overflow (the weights are as before the step), or a piece of the first layer.
                if !o.overflow { apply(piece: k, at: pieces[k].range.lowerBound - range.lowerBound, update: kept.update, unscale: kept.unscale) }
                try sendPiece(k, version: step + 1, request: o.request)
            }
        }
        kept.encoded = kept.encoded.map { _ in nil }
    }
}
