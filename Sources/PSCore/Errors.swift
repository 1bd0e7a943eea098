/// An error a person can act on: it says what is wrong, where, and what to do.
/// (A configuration that cannot be used is a ConfigError instead; it prints
/// the same way, through its description.)
public struct PSError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
