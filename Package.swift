// swift-tools-version:6.0
// pstrain: a parameter-server training coordinator over MPI.
//
// Modules, each with one reason to change; the graph is a DAG, drawn in
// docs/architecture.md. Each target declares every module it imports (no
// edge is used only through another), and each file imports only what it uses:
//   CBLAS, CZlib, CZstd, CXXHash, CPSKernels   C at the edge (system libraries, small kernels)
//   PSSupport      errors, hashes (XXH64, SHA-256), durable file writes, console writes, timing
//   PSNumerics     tensors, precision and the loss scaler, layers and the model, optimizers, data sets in memory
//   PSData         data-set file formats (IDX): readers of untrusted bytes
//   PSCodec        the codec pipeline: stages, top-k and its error feedback
//   PSConfig       the configuration: typed sections over its own TOML reader
//   PSCheckpoint   safetensors, checkpoints (manifest, checked reader, writer, loading)
//   PSRunLog       the run log's record types, written and read
//   PSProtocol     frames, messages, the Transport protocol, the server and worker roles
//   PSMPI          Open MPI behind a prefixed shim (CMPI); MPITransport
//   PSRank         what a rank executable does (arguments, hello exchange, error reporting)
//   PSLaunch       the launcher: the mpirun plan, running and restarting a job, Ctrl-C, the watchdog, mpirun's failures in plain words
//   PSInspect      reading a run directory back (pstrain inspect)
//   pstrain-server, pstrain-worker, pstrain, pstrain-bench   the executables
//   PSTestSupport  for tests only (no executable links it): the in-process transport and whole
//                  worlds on threads, the checkpoint fixture, the shared test configuration
//   PSCoreTests, IntegrationTests   the test targets (scripts/test runs them in tiers)
import PackageDescription
import Foundation

// Release builds: whole-module optimisation at -O, so Swift's bounds and
// overflow checks stay on everywhere, every reader of untrusted bytes
// included. -Ounchecked on the hot modules (PSNumerics, PSCodec) was not
// faster on the W=2 S=1 step (all -O measured 1.012x, docs/benchmarks.md).
// PSTRAIN_SWIFT_OPT (for example -Ounchecked) builds those two at another
// level, so that scripts/bench-compare can measure it again.
let hotLevel = ProcessInfo.processInfo.environment["PSTRAIN_SWIFT_OPT"] ?? "-O"
let hot: [SwiftSetting] = [.unsafeFlags([hotLevel, "-wmo"], .when(configuration: .release))]
let release: [SwiftSetting] = [.unsafeFlags(["-O", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "pstrain",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "pstrain", targets: ["pstrain"]),
        .executable(name: "pstrain-server", targets: ["pstrain-server"]),
        .executable(name: "pstrain-worker", targets: ["pstrain-worker"]),
        // Everything but MPI, for the fuzz package (fuzz/) and other tools.
        .library(name: "PSCore", targets: ["PSSupport", "PSNumerics", "PSCodec", "PSData", "PSConfig", "PSCheckpoint", "PSRunLog", "PSProtocol"]),
        .library(name: "PSInspect", targets: ["PSInspect"]),
        // For the fuzz package's manifest harness (the checkpoint fixture); no executable uses it.
        .library(name: "PSTestSupport", targets: ["PSTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // SHA-256 of checkpoint files, exports and run.toml (Crypto.SHA256; BoringSSL underneath on Linux).
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        // XXH64 (parameter digests, config and build hashes) and XXH3 (the frame checksum).
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),
        .target(name: "CPSKernels",
                // -Wno-psabi: the 8-float vectors are passed only between static functions of winograd.c, never across an ABI boundary.
                cSettings: [.unsafeFlags(["-O3", "-Wno-psabi"])]),
        .target(name: "PSSupport", dependencies: ["CXXHash", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: release),
        .target(name: "PSNumerics", dependencies: ["PSSupport", "CBLAS", "CPSKernels"], swiftSettings: hot),
        .target(name: "PSCodec", dependencies: ["PSSupport", "PSNumerics", "CZstd", "CPSKernels"], swiftSettings: hot),
        .target(name: "PSData", dependencies: ["PSSupport", "PSNumerics", "CZlib"], swiftSettings: release),
        .target(name: "PSConfig", dependencies: ["PSSupport", "PSNumerics", "PSCodec", "PSData"], swiftSettings: release),
        .target(name: "PSCheckpoint", dependencies: ["PSSupport", "PSNumerics"], swiftSettings: release),
        .target(name: "PSRunLog", dependencies: ["PSSupport"], swiftSettings: release),
        .target(name: "PSProtocol", dependencies: ["PSSupport", "PSNumerics", "PSCodec", "PSData", "PSConfig", "PSCheckpoint", "PSRunLog"],
                swiftSettings: release),
        .target(name: "PSLaunch", dependencies: ["PSSupport", "PSConfig", "PSCheckpoint", "PSRunLog"], swiftSettings: release),
        .target(name: "PSInspect", dependencies: ["PSSupport", "PSNumerics", "PSConfig", "PSCheckpoint", "PSRunLog", "PSLaunch"], swiftSettings: release),
        .target(name: "PSMPI", dependencies: ["CMPI", "CPSKernels", "PSProtocol"], swiftSettings: release),
        .target(name: "PSRank", dependencies: ["CBLAS", "CPSKernels", "PSSupport", "PSNumerics", "PSConfig", "PSCheckpoint", "PSRunLog",
                                              "PSProtocol", "PSMPI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: release),
        .executableTarget(name: "pstrain-server", dependencies: ["PSRank"]),
        .executableTarget(name: "pstrain-worker", dependencies: ["PSRank"]),
        .executableTarget(name: "pstrain",
                          dependencies: ["PSSupport", "PSNumerics", "PSData", "PSConfig", "PSCheckpoint", "PSRunLog", "PSProtocol",
                                         "PSLaunch", "PSInspect", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: release),
        .executableTarget(name: "pstrain-bench", dependencies: ["CBLAS", "CPSKernels", "CXXHash", "PSSupport", "PSNumerics", "PSCodec", "PSConfig",
                                                               "PSCheckpoint", "PSRunLog", "PSProtocol"], swiftSettings: release),
        // The NIOEmbedded idea: what tests share (the in-process transport, world builders, fixtures)
        // is a module of its own, built on the public API of the modules below it.
        .target(name: "PSTestSupport", dependencies: ["PSSupport", "PSNumerics", "PSConfig", "PSCheckpoint", "PSRunLog", "PSProtocol"],
                swiftSettings: release),
        .testTarget(name: "PSCoreTests", dependencies: ["CPSKernels", "CXXHash", "CZlib", "PSSupport", "PSNumerics", "PSCodec", "PSData",
                                                        "PSConfig", "PSCheckpoint", "PSRunLog", "PSProtocol", "PSLaunch", "PSTestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["PSSupport", "PSNumerics", "PSCodec", "PSData", "PSConfig", "PSCheckpoint",
                                                             "PSRunLog", "PSProtocol", "PSInspect", "PSTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
