/// A growable run of Floats with a stable pointer between appends (Swift
/// arrays do not promise a pointer outlives `withUnsafe...`).
public final class GrowableFloats {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var count = 0
    private var capacity: Int

    public init(capacity: Int = 1024) {
        self.capacity = max(capacity, 16)
        pointer = .allocate(capacity: self.capacity)
    }
    deinit { pointer.deallocate() }

    /// Appends `n` elements of `value`.
    public func append(repeating value: Float, count n: Int) {
        reserve(count + n)
        (pointer + count).initialize(repeating: value, count: n)
        count += n
    }

    /// Makes room for `n` elements (the pointer may change).
    public func reserve(_ n: Int) {
        guard n > capacity else { return }
        var c = capacity
        while c < n { c *= 2 }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: c)
        p.update(from: pointer, count: count)
        pointer.deallocate()
        pointer = p
        capacity = c
    }

    public func removeAll() { count = 0 }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}
