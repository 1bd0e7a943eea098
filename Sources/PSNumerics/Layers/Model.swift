import PSSupport

/// Where one parameter tensor lives in the model's flat parameter vector.
public struct TensorSlot: Equatable {
    public let index: Int
    public let spec: ParamSpec
    public let offset: Int
    public var count: Int { spec.count }
    public var name: String { spec.name }
}

/// The layout of a model's parameters, shared by servers (which own slices of
/// it) and workers (which hold all of it). Tensors are laid end to end in
/// layer order; names follow PyTorch's nn.Sequential ("layers.0.weight").
public struct ModelLayout: Equatable {
    public let tensors: [TensorSlot]
    public let totalCount: Int

    public init(specs: [ParamSpec]) {
        var off = 0
        var slots: [TensorSlot] = []
        for (i, s) in specs.enumerated() {
            slots.append(TensorSlot(index: i, spec: s, offset: off))
            off += s.count
        }
        tensors = slots
        totalCount = off
    }

    /// Writes the initial values of global elements [lo, hi) into `out`.
    /// Each element depends on (seed, tensor index, element index) alone.
    public func initialize(seed: UInt64, range lo: Int, _ hi: Int, into out: UnsafeMutablePointer<Float>) {
        for t in tensors {
            let a = max(lo, t.offset), b = min(hi, t.offset + t.count)
            if a >= b { continue }
            switch t.spec.initializer {
            case .zeros:
                (out + (a - lo)).update(repeating: 0, count: b - a)
            case .ones:
                (out + (a - lo)).update(repeating: 1, count: b - a)
            case .uniform(let bound):
                for g in a..<b {
                    let u = CounterRNG.uniform(seed: seed, stream: UInt64(t.index), index: UInt64(g - t.offset))
                    out[g - lo] = (2 * u - 1) * bound
                }
            }
        }
    }
}

/// A sequential network with its activation buffers for up to `capacity`
/// samples. One instance per worker: not shared between threads.
public final class Model {
    public let layers: [Layer]
    public let layout: ModelLayout
    /// The shape of a sample (model.input), and its element count.
    public let inputShape: [Int]
    public let inputSize: Int
    public let classes: Int
    public let capacity: Int
    /// The loss it trains on.
    public let loss: LossKind
    /// With embedding tables: the gradient of the input (capacity, inputSize),
    /// which backward then writes (nil: the first layer's input gradient is
    /// never needed).
    public let inputGradient: FloatBuffer?
    /// DeepFM's interaction term on the input's bags, added to the logit (nil: none).
    public var interaction: FMInteraction?
    /// The fewest rows a worker's model holds (its batch slice can be
    /// smaller; evaluation uses the room).
    public static let minimumCapacity = 256
    /// The widest a layer (and the input) may be: 2^20 features.
    public static let maxWidth = 1 << 20
    /// FP16/BF16: every activation and gradient is rounded to that format
    /// when a layer stores it (computation stays FP32 through OpenBLAS).
    public var storage: Precision = .fp32
    /// Where each layer's parameters start in the flat vector.
    let paramOffsets: [Int]
    /// acts[0] is the input; acts[i+1] is layer i's output. (capacity, size)
    public let acts: [FloatBuffer]
    /// Gradients of the activations, same shapes as acts[1...].
    let dActs: [FloatBuffer]

    /// The model of `entries` (checked by the configuration) on samples of shape `input`.
    public init(input: [Int], entries: [LayerEntry], capacity: Int, loss: LossKind = .softmax, inputGradient: Bool = false) throws {
        let layers = try LayerKinds.build(entries, input: input).get()
        let inputSize = input.reduce(1, *)
        let size = layers.last?.outputSize ?? inputSize
        guard layers.contains(where: { $0.parameters.contains { $0.role == .trainable } }) else {
            throw PSError("model.layers has no layer with trained parameters (dense, conv2d, ...): nothing to train")
        }
        self.layers = layers
        self.inputShape = input
        self.inputSize = inputSize
        if loss == .bce && size != 1 {
            throw PSError("model.loss = \"bce\" takes one logit per row, but the last layer of model.layers has \(size) outputs: end with { type = \"dense\", units = 1 }")
        }
        self.classes = size
        self.capacity = capacity
        self.loss = loss
        self.inputGradient = inputGradient ? FloatBuffer(count: capacity * inputSize) : nil
        layout = ModelLayout(specs: layers.flatMap { $0.parameters })
        var offs: [Int] = []
        var off = 0
        for l in layers { offs.append(off); off += l.parameters.reduce(0) { $0 + $1.count } }
        paramOffsets = offs
        acts = [FloatBuffer(count: capacity * inputSize)] + layers.map { FloatBuffer(count: capacity * $0.outputSize) }
        dActs = layers.map { FloatBuffer(count: capacity * $0.outputSize) }
        for l in layers { l.prepare(capacity: capacity) }
    }

    /// The model on flat samples of `inputSize` features.
    public convenience init(inputSize: Int, entries: [LayerEntry], capacity: Int) throws {
        try self.init(input: [inputSize], entries: entries, capacity: capacity)
    }


    /// Where layer `i`'s parameters lie in the flat vector.
    public func parameterRange(layer i: Int) -> Range<Int> {
        paramOffsets[i]..<(paramOffsets[i] + layers[i].parameters.reduce(0) { $0 + $1.count })
    }

    /// The input buffer: fill (batch, inputSize) before forward.
    public var input: UnsafeMutablePointer<Float> { acts[0].pointer }
    public var logits: UnsafeMutablePointer<Float> { acts[layers.count].pointer }

    /// `beforeLayer(i)` runs before layer i computes: a worker waits there
    /// for that layer's parameters, so the first layers start while the
    /// last layers' parameters are still on their way.
    public func forward(batch: Int, params: UnsafePointer<Float>, context: LayerContext = LayerContext(),
                        beforeLayer: ((Int) -> Void)? = nil) {
        precondition(batch <= capacity)
        round(acts[0].pointer, batch * inputSize)
        for (i, l) in layers.enumerated() {
            beforeLayer?(i)
            l.forward(x: acts[i].pointer, y: acts[i + 1].pointer, batch: batch, params: params + paramOffsets[i], context: context)
            round(acts[i + 1].pointer, batch * l.outputSize)
        }
        if let fm = interaction {
            fm.forward(input: acts[0].pointer, logits: logits, batch: batch)
            round(logits, batch * classes)
        }
    }

    /// Rounds to the storage format (nothing for FP32).
    @inline(__always)
    public func round(_ p: UnsafeMutablePointer<Float>, _ n: Int) { storage.round(p, n) }

    /// Forward, loss and backward for one microbatch whose input is already in
    /// `input`. Gradients of sum(loss) * gradScale go to `grads` (all of it is
    /// overwritten). Returns the summed loss and the correct count.
    /// `layerDone(i)` is called as soon as layer i's gradients are final
    /// (last layer first), so they can be sent while backward goes on.
    public func trainStep(batch: Int, labels: UnsafePointer<UInt8>, gradScale: Float,
                          params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>,
                          context: LayerContext = LayerContext(),
                          layerDone: ((Int) -> Void)? = nil) -> (lossSum: Double, correct: Int) {
        forward(batch: batch, params: params, context: context)
        return lossAndBackward(batch: batch, labels: labels, gradScale: gradScale, params: params, grads: grads, context: context,
                               layerDone: layerDone)
    }

    /// The loss of the forward pass just made, and backward from it.
    public func lossAndBackward(batch: Int, labels: UnsafePointer<UInt8>, gradScale: Float,
                                params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>,
                                context: LayerContext = LayerContext(),
                                layerDone: ((Int) -> Void)? = nil) -> (lossSum: Double, correct: Int) {
        let last = layers.count - 1
        let r = scoreLoss(batch: batch, labels: labels, dlogits: dActs[last].pointer, gradScale: gradScale)
        round(dActs[last].pointer, batch * classes)
        var c = context
        c.gradScale = gradScale
        backward(batch: batch, params: params, grads: grads, context: c, layerDone: layerDone)
        if let fm = interaction, let g = inputGradient {
            fm.backward(input: acts[0].pointer, dlogits: dActs[last].pointer, dInput: g.pointer, batch: batch)
            round(g.pointer, batch * inputSize)
        }
        return r
    }

    /// Backward from dActs[last] (already holding dLoss/dlogits).
    public func backward(batch: Int, params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>,
                         context: LayerContext = LayerContext(), layerDone: ((Int) -> Void)? = nil) {
        var i = layers.count - 1
        while i >= 0 {
            let l = layers[i]
            // The first layer's input gradient is needed only to train embedding tables.
            let dx: UnsafeMutablePointer<Float>? = i > 0 ? dActs[i - 1].pointer : inputGradient?.pointer
            l.backward(x: acts[i].pointer, y: acts[i + 1].pointer, dy: dActs[i].pointer, dx: dx, batch: batch,
                       params: params + paramOffsets[i], grads: grads + paramOffsets[i], context: context)
            if let dx { round(dx, batch * l.inputSize) }
            round(grads + paramOffsets[i], l.parameters.reduce(0) { $0 + $1.count })
            if !l.parameters.isEmpty { layerDone?(i) }
            i -= 1
        }
    }

    /// Loss sum and correct count of a batch, forward only.
    public func evaluate(batch: Int, labels: UnsafePointer<UInt8>, params: UnsafePointer<Float>) -> (lossSum: Double, correct: Int) {
        forward(batch: batch, params: params, context: .evaluation)
        return scoreLoss(batch: batch, labels: labels, dlogits: nil, gradScale: 0)
    }

    /// The loss of the logits of the last forward pass (and its gradient into `dlogits`).
    func scoreLoss(batch: Int, labels: UnsafePointer<UInt8>, dlogits: UnsafeMutablePointer<Float>?, gradScale: Float) -> (lossSum: Double, correct: Int) {
        switch loss {
        case .softmax:
            return SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, batch: batch, classes: classes, dlogits: dlogits, gradScale: gradScale)
        case .bce:
            return BinaryCrossEntropy.evaluate(logits: logits, labels: labels, batch: batch, dlogits: dlogits, gradScale: gradScale)
        }
    }
}
