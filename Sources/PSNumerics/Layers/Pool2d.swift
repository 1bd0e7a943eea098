
/// What the 2-D pooling layers share: keys, geometry and the window loop.
/// Windows are kernel x kernel, moved by stride (default: kernel), without
/// padding, over each channel of [C, H, W] samples.
public class Pool2d {
    public static var keys: [LayerKey] { [.integer("kernel", 1...64), .integer("stride", 1...64, default: 0)] }
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let parameters: [ParamSpec] = []
    let c: Int, h: Int, w: Int, k: Int, stride: Int, oh: Int, ow: Int

    required init(input: [Int], kernel: Int, stride: Int, output: (Int, Int)) {
        (c, h, w) = (input[0], input[1], input[2])
        k = kernel; self.stride = stride
        (oh, ow) = output
        inputShape = input
        outputShape = [c, oh, ow]
    }

    /// The layer of `entry` on `input`, or the problem naming the shapes.
    static func build<P: Pool2d & LayerKind>(_: P.Type, _ entry: LayerEntry, input: [Int]) throws -> Layer {
        _ = try Shapes.image(input, type: P.type)
        let k = entry.int("kernel"), s = entry.int("stride", default: k)
        let oh = try Shapes.windows(input[1], kernel: k, stride: s, padding: 0, type: P.type, input: input)
        let ow = try Shapes.windows(input[2], kernel: k, stride: s, padding: 0, type: P.type, input: input)
        return P(input: input, kernel: k, stride: s, output: (oh, ow))
    }

    /// Calls body(plane, output index, first input index of the window) for
    /// every output element of `batch` samples; plane = sample * c + channel.
    @inline(__always)
    func eachWindow(batch: Int, _ body: (Int, Int, Int) -> Void) {
        for plane in 0..<(batch * c) {
            for oy in 0..<oh {
                for ox in 0..<ow { body(plane, (plane * oh + oy) * ow + ox, plane * h * w + oy * stride * w + ox * stride) }
            }
        }
    }
}
