import PSNumerics

/// How the flat parameter vector is cut over S servers: server s owns the
/// contiguous global range [bounds[s], bounds[s+1]), balanced by bytes to
/// within one element. A large tensor is simply cut where a range ends, so
/// two servers share the big first layer. A tensor's part on one server is
/// its shard there; shards are cut into the pieces that travel (one
/// message each).
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

    /// A range of one tensor on one server: a whole shard, or a piece of one.
    public struct Piece: Equatable {
        public let server: Int
        public let tensor: Int
        /// Global element range.
        public let range: Range<Int>
    }

    /// The shards of every tensor, in server then tensor order (a checkpoint's manifest lists them).
    public func shards(_ layout: ModelLayout) -> [Piece] {
        var out: [Piece] = []
        for s in 0..<servers {
            let r = range(s)
            for t in layout.tensors {
                let lo = max(r.lowerBound, t.offset), hi = min(r.upperBound, t.offset + t.count)
                if lo < hi { out.append(Piece(server: s, tensor: t.index, range: lo..<hi)) }
            }
        }
        return out
    }

    /// The messages of one step: every shard, cut further into pieces of at
    /// most `maxElements`, in the order backward produces them (last tensor
    /// first). A piece's position in this list is its number: the header's
    /// index on the wire; each server handles its pieces in this order.
    public func pieces(_ layout: ModelLayout, maxElements: Int) -> [Piece] {
        precondition(maxElements > 0)
        var out: [Piece] = []
        for t in layout.tensors.reversed() {
            for s in 0..<servers {
                let r = range(s)
                var lo = max(r.lowerBound, t.offset)
                let hi = min(r.upperBound, t.offset + t.count)
                while lo < hi {
                    let end = min(hi, lo + maxElements)
                    out.append(Piece(server: s, tensor: t.index, range: lo..<end))
                    lo = end
                }
            }
        }
        return out
    }
}
