import Foundation
import PSNumerics

/// The planted model behind a synthetic click log (CTRGenerator): every
/// number is a counter-based function of (seed, stream, index), so any row
/// can be drawn alone and the same options give the same rows.
///
/// Row g (training rows 0..<N, test rows N..<N+M): categorical field f is
/// empty with probability `missing`, otherwise its Zipf rank k (P(k) ~
/// (k + 1)^-zipf over the vocabulary) is written as the hexadecimal id
/// perm_f(k), a fixed random permutation of [0, V_f). Integer feature j is
/// empty with probability `missing`, otherwise floor(exp(mu_j + sd_j z))
/// (log-normal: heavy-ish tails), and I2 is negative (-1 to -3) in 2% of
/// the rows. Then
///
///     logit = bias + sum_f w_f(k_f) + sum_(f,g) in pairs <v_f(k_f), v_g(k_g)>
///                  + sum_j u_j (log1p(max(I_j, 0)) - mu_j)
///
/// (an empty field adds nothing) and the label is 1 with probability
/// sigmoid(logit). w ~ N(0, wScale^2), v ~ N(0, vScale^2) per component,
/// u ~ N(0, uScale^2); the bias is set so that the click rate is 25%.
struct CTRPlanted {
    static let wScale = 0.25, vScale = 0.4, uScale = 0.12
    static let targetRate = 0.25

    let seed: UInt64
    let vocabularies: [Int]
    let dim: Int
    let missing: Double
    let pairs: [(Int, Int)]
    /// Per field, the Zipf CDF over ranks and the permutation of ranks to ids.
    let cdf: [[Double]]
    let perm: [[UInt32]]
    let mu: [Double], sd: [Double], u: [Double]
    /// w and v of the first `head` ranks of each field, computed once
    /// (the same values as w(f, k) and v(f, k, c); the Zipf head is most of the draws).
    let wHead: [[Double]], vHead: [[Double]]
    static let head = 4096
    var bias = 0.0

    // RNG streams.
    static let sMissing: UInt64 = 0x100, sRank: UInt64 = 0x200, sW: UInt64 = 0x300, sV: UInt64 = 0x400
    static let sPerm: UInt64 = 0x500, sInt: UInt64 = 0x600, sIntMissing: UInt64 = 0x700
    static let sDense: UInt64 = 0x800, sNegative: UInt64 = 0x900, sLabel: UInt64 = 0xA00

    init(seed: UInt64, vocabularies: [Int], zipf: Double, dim: Int, missing: Double) {
        self.seed = seed; self.vocabularies = vocabularies; self.dim = dim; self.missing = missing
        let f = vocabularies.count
        pairs = stride(from: 0, to: min(f, 12) - 1, by: 2).map { ($0, $0 + 1) } + (f >= 14 ? [(0, 12), (1, 13)] : [])
        cdf = vocabularies.map { Self.zipfCDF($0, zipf) }
        perm = vocabularies.enumerated().map { Self.permutation($0.element, seed: seed, stream: Self.sPerm + UInt64($0.offset)) }
        let d = Criteo.denseCount
        mu = (0..<d).map { 0.5 + 3 * Self.uniform(seed, Self.sDense, UInt64($0)) }
        sd = (0..<d).map { 0.6 + 0.8 * Self.uniform(seed, Self.sDense, UInt64(100 + $0)) }
        u = (0..<d).map { Self.uScale * Self.gauss(seed, Self.sDense, UInt64(200 + $0)) }
        wHead = (0..<f).map { k in (0..<min(Self.head, vocabularies[k])).map { Self.w(seed, k, $0) } }
        vHead = (0..<f).map { k in (0..<(min(Self.head, vocabularies[k]) * dim)).map { Self.v(seed, k, $0) } }
    }

    /// The planted weight of rank `rank` of field `f`.
    static func w(_ seed: UInt64, _ f: Int, _ rank: Int) -> Double { wScale * gauss(seed, sW + UInt64(f), UInt64(rank)) }

    /// Component `i` = rank x dim + c of field f's planted interaction vectors (without the scale).
    static func v(_ seed: UInt64, _ f: Int, _ i: Int) -> Double { gauss(seed, sV + UInt64(f), UInt64(i)) }

    /// Uniform in [0, 1) with 53 bits.
    @inline(__always)
    static func uniform(_ seed: UInt64, _ stream: UInt64, _ index: UInt64) -> Double {
        Double(CounterRNG.bits(seed: seed, stream: stream, index: index) >> 11) * 0x1p-53
    }

    /// A standard normal (Box-Muller on two counter draws).
    @inline(__always)
    static func gauss(_ seed: UInt64, _ stream: UInt64, _ index: UInt64) -> Double {
        let a = (Double(CounterRNG.bits(seed: seed, stream: stream, index: 2 &* index) >> 11) + 0.5) * 0x1p-53
        let b = uniform(seed, stream, 2 &* index &+ 1)
        return (-2 * log(a)).squareRoot() * cos(2 * Double.pi * b)
    }

    static func zipfCDF(_ v: Int, _ s: Double) -> [Double] {
        var c = [Double](repeating: 0, count: v), sum = 0.0
        for k in 0..<v { sum += pow(Double(k + 1), -s); c[k] = sum }
        for k in 0..<v { c[k] /= sum }
        c[v - 1] = 1
        return c
    }

    /// A Fisher-Yates permutation of [0, v) from the counter RNG.
    static func permutation(_ v: Int, seed: UInt64, stream: UInt64) -> [UInt32] {
        var p = (0..<v).map { UInt32($0) }
        var i = v - 1
        while i > 0 {
            let j = Int(CounterRNG.bits(seed: seed, stream: stream, index: UInt64(i)) % UInt64(i + 1))
            p.swapAt(i, j)
            i -= 1
        }
        return p
    }

    /// The first rank whose CDF exceeds `x`.
    @inline(__always)
    static func rank(_ c: [Double], _ x: Double) -> Int {
        var lo = 0, hi = c.count - 1
        while lo < hi {
            let mid = (lo + hi) >> 1
            if c[mid] > x { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// One drawn row: per field the rank (-1: empty), per integer feature its value (nil: empty).
    struct Row {
        var ranks: [Int] = []
        var ints: [Int64?] = []
        /// The logit without the bias.
        var z = 0.0
    }

    func draw(_ g: Int, into r: inout Row) {
        let gi = UInt64(g), f = vocabularies.count
        if r.ranks.count != f { r.ranks = Array(repeating: -1, count: f) }
        if r.ints.count != Criteo.denseCount { r.ints = Array(repeating: nil, count: Criteo.denseCount) }
        var z = 0.0
        for k in 0..<f {
            guard Self.uniform(seed, Self.sMissing + UInt64(k), gi) >= missing else { r.ranks[k] = -1; continue }
            let rank = Self.rank(cdf[k], Self.uniform(seed, Self.sRank + UInt64(k), gi))
            r.ranks[k] = rank
            z += rank < Self.head ? wHead[k][rank] : Self.w(seed, k, rank)
        }
        for (a, b) in pairs where r.ranks[a] >= 0 && r.ranks[b] >= 0 {
            var dot = 0.0
            for c in 0..<dim {
                let i = r.ranks[a] * dim + c, j = r.ranks[b] * dim + c
                dot += (r.ranks[a] < Self.head ? vHead[a][i] : Self.v(seed, a, i)) * (r.ranks[b] < Self.head ? vHead[b][j] : Self.v(seed, b, j))
            }
            z += Self.vScale * Self.vScale * dot
        }
        for j in 0..<Criteo.denseCount {
            guard Self.uniform(seed, Self.sIntMissing + UInt64(j), gi) >= missing else { r.ints[j] = nil; continue }
            var v = Int64(min(1e9, exp(mu[j] + sd[j] * Self.gauss(seed, Self.sInt + UInt64(j), gi))).rounded(.down))
            if j == 1 && Self.uniform(seed, Self.sNegative, gi) < 0.02 { v = -1 - Int64(CounterRNG.bits(seed: seed, stream: Self.sNegative, index: gi) % 3) }
            r.ints[j] = v
            z += u[j] * (log1p(Double(max(v, 0))) - mu[j])
        }
        r.z = z
    }

    /// Whether row g with logit `logit` is a click.
    func label(_ g: Int, logit: Double) -> Bool {
        Self.uniform(seed, Self.sLabel, UInt64(g)) < 1 / (1 + exp(-logit))
    }

    /// The bias that makes the mean click probability of rows 0..<n the target rate.
    mutating func calibrate(rows n: Int) {
        var r = Row(), zs: [Double] = []
        for g in 0..<n { draw(g, into: &r); zs.append(r.z) }
        var lo = -20.0, hi = 20.0
        for _ in 0..<60 {
            let mid = (lo + hi) / 2
            let rate = zs.reduce(0) { $0 + 1 / (1 + exp(-(mid + $1))) } / Double(n)
            if rate < Self.targetRate { lo = mid } else { hi = mid }
        }
        bias = (lo + hi) / 2
    }
}
