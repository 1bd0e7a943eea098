/// The two kinds of rank: servers hold the parameters and the optimizer,
/// workers hold the data and compute gradients.
public enum Role: UInt8 {
    case server = 1, worker = 2
    public var name: String { self == .server ? "server" : "worker" }
}
