
/// A layer that maps each element alone, keeping the shape: y = f(x), and
/// dx = dy * f'(x, y). Each activation is one small file with its `type`,
/// `f` and `derivative`; the loops are here once.
public class Activation {
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    public let parameters: [ParamSpec] = []
    public required init(shape: [Int]) { inputShape = shape }

    /// f over n elements.
    func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) { fatalError("override") }
    /// dx = dy * f'(x) over n elements (y = f(x) is given too).
    func derive(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        fatalError("override")
    }

    public func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, params: UnsafePointer<Float>,
                        context: LayerContext) {
        apply(x, y, batch * inputShape.reduce(1, *))
    }

    public func backward(x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?, batch: Int,
                         params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, context: LayerContext) {
        guard let dx else { return }
        derive(x, y, dy, dx, batch * inputShape.reduce(1, *))
    }
}

extension LayerKind where Self: Activation {
    public static var keys: [LayerKey] { [] }
    public static func make(_ entry: LayerEntry, index: Int, input: [Int]) throws -> Layer { Self(shape: input) }
}
