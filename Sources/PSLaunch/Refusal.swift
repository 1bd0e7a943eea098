import PSSupport

/// A command refused what it was given while it ran (a configuration, a
/// file, a run directory), as opposed to its arguments: main prints
/// "Error: <message>" without the usage text, whose arguments were fine,
/// and exits with the usage status (64).
public struct Refusal: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Runs `body`; an error a user can act on (any domain's UserFacingError)
/// becomes a Refusal. Other errors pass through.
public func userFacing<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as any UserFacingError { throw Refusal(e.description) }
}
