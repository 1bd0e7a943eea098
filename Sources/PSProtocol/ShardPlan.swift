import PSNumerics

/// How the flat parameter vector is cut over S servers: server s owns the
/// contiguous global range [bounds[s], bounds[s+1]), balanced by bytes to
/// within one element. A large tensor is simply cut where a range ends, so
/// two servers share the big first layer; a piece of one tensor on one
/// server is a "chunk".
public struct ShardPlan: Equatable {
    public let total: Int
    public let servers: Int
    public let bounds: [Int]

    public init(total: Int, servers: Int) {
        precondition(servers >= 1)
        self.total = total
        self.servers = servers
        bounds = (0...servers).map { s in
            let base = total / servers, extra = total % servers
            return s * base + min(s, extra)
        }
    }

    public func range(_ s: Int) -> Range<Int> { bounds[s]..<bounds[s + 1] }

    public struct Chunk: Equatable {
        public let server: Int
        public let tensor: Int
        /// Global element range of the chunk.
        public let range: Range<Int>
    }

    /// The chunks of every tensor, in server then tensor order.
    public func chunks(_ layout: ModelLayout) -> [Chunk] {
        var out: [Chunk] = []
        for s in 0..<servers {
            let r = range(s)
            for t in layout.tensors {
                let lo = max(r.lowerBound, t.offset), hi = min(r.upperBound, t.offset + t.count)
                if lo < hi { out.append(Chunk(server: s, tensor: t.index, range: lo..<hi)) }
            }
        }
        return out
    }

    /// The messages of one step: every tensor-on-server chunk, cut further
    /// into pieces of at most `maxElements`, in the order backward produces
    /// them (last tensor first). A piece's position in this list is its
    /// chunk id on the wire; each server handles its pieces in this order.
    public func pieces(_ layout: ModelLayout, maxElements: Int) -> [Chunk] {
        precondition(maxElements > 0)
        var out: [Chunk] = []
        for t in layout.tensors.reversed() {
            for s in 0..<servers {
                let r = range(s)
                var lo = max(r.lowerBound, t.offset)
                let hi = min(r.upperBound, t.offset + t.count)
                while lo < hi {
                    let end = min(hi, lo + maxElements)
                    out.append(Chunk(server: s, tensor: t.index, range: lo..<end))
                    lo = end
                }
            }
        }
        return out
    }
}
