import ArgumentParser
import PSSupport
import PSNumerics
import PSCodec
import PSData
import PSConfig
import PSCheckpoint
import PSRunLog
import PSProtocol
import PSLaunch

/// Runs `body`; an error a user can act on (any domain's UserFacingError)
/// becomes ArgumentParser's ValidationError, which it prints as
/// "Error: <message>" with the usage exit code. Other errors pass through.
func userFacing<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as any UserFacingError { throw ValidationError(e.description) }
}
