/// An error a person can act on: its description is the whole message a
/// user sees (what is wrong, where, and what to do). Each domain has its own
/// error type (ConfigError, DataError, CodecError, FrameError,
/// CheckpointError, ProtocolError, ...); the executables print any of them
/// the same way.
public protocol UserFacingError: Error, CustomStringConvertible {}

/// A message for the few errors that belong to no domain of their own.
public struct PSError: UserFacingError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
