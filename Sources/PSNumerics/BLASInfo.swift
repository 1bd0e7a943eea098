import CBLAS
import Foundation
import PSSupport

/// Which OpenBLAS kernels run, and which should.
///
/// OpenBLAS picks its kernels when the library loads, from the CPU model. A
/// CPU newer than the OpenBLAS build (Debian 12 ships 0.3.21; Sapphire/Emerald
/// Rapids report model 143/207) falls back to the generic "Prescott" kernels,
/// 3-4x slower than the AVX-512 ones the CPU can run. The launcher passes
/// OPENBLAS_CORETYPE to the ranks when that happens and the user has not set
/// it; every worker checks its sgemm against a plain loop at start-up.
public enum BLASInfo {
    /// The kernel family OpenBLAS chose, e.g. "SkylakeX" or "Prescott".
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    static let genericCores: Set<String> = ["prescott", "core2", "katmai", "coppermine", "northwood", "nehalem", "atom", "barcelona", "unknown"]

    /// The OPENBLAS_CORETYPE to ask for, or nil when OpenBLAS's own choice is
    /// fine (or the user chose). `flags` are the CPU's /proc/cpuinfo flags.
    public static func recommendedCoreType(current: String, flags: Set<String>, environment: [String: String]) -> String? {
        if environment["OPENBLAS_CORETYPE"] != nil { return nil }
        guard genericCores.contains(current.lowercased()) else { return nil }
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }

    public static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    public static func recommendedCoreType() -> String? {
        recommendedCoreType(current: coreName, flags: cpuFlags(), environment: ProcessInfo.processInfo.environment)
    }

    /// Compares cblas_sgemm with a plain loop on a small product; throws if
    /// the kernels compute wrong numbers on this CPU. Tolerance: 1e-4 relative
    /// to the sum of |a*b| terms of each entry.
    public static func selfCheck() throws {
        let m = 37, n = 45, k = 70
        let a = (0..<(m * k)).map { Float(CounterRNG.uniform(seed: 1, stream: 1, index: UInt64($0))) - 0.5 }
        let b = (0..<(k * n)).map { Float(CounterRNG.uniform(seed: 1, stream: 2, index: UInt64($0))) - 0.5 }
        var c = [Float](repeating: 0, count: m * n)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &c, Int32(n))
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0, mag = 0.0
                for p in 0..<k { let t = Double(a[i * k + p]) * Double(b[p * n + j]); s += t; mag += abs(t) }
                if abs(Double(c[i * n + j]) - s) > 1e-4 * max(mag, 1e-6) {
                    throw PSError("OpenBLAS (\(coreName) kernels) computed a wrong matrix product on this CPU (entry \(i),\(j): \(c[i * n + j]) instead of \(s)); "
                        + "unset OPENBLAS_CORETYPE or set it to an older core type such as Haswell")
                }
            }
        }
    }
}
