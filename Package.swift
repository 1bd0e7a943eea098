// swift-tools-version:6.0
// pstrain: a parameter-server training coordinator over MPI.
//
// Layering (see docs/architecture.md):
//   CBLAS, CZlib, CZstd,       C at the edge (system libraries, small kernels)
//   CXXHash, CPSKernels
//   PSCore                     model, optimizer, data, config, run log (the
//                              record types, written and read), frames,
//                              server/worker logic over a Transport protocol;
//                              knows nothing of MPI
//   PSInspect                  reading a run directory back: summary, HTML
//                              report, Chrome trace (pstrain inspect)
//   CMPI, PSMPI                Open MPI behind a prefixed shim; MPITransport
//   PSRank                     what a rank executable does (argument parsing,
//                              hello exchange, error reporting)
//   pstrain-server/-worker     thin main.swift files
//   pstrain                    launcher and tools (PSCore, PSInspect)
import PackageDescription

let release: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "pstrain",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "pstrain", targets: ["pstrain"]),
        .executable(name: "pstrain-server", targets: ["pstrain-server"]),
        .executable(name: "pstrain-worker", targets: ["pstrain-worker"]),
        .library(name: "PSCore", targets: ["PSCore"]),
        .library(name: "PSInspect", targets: ["PSInspect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // SHA-256 of checkpoint files (Crypto.SHA256; BoringSSL underneath on Linux).
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
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
                cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "PSCore",
                dependencies: ["CBLAS", "CZlib", "CZstd", "CXXHash", "CPSKernels", .product(name: "TOMLKit", package: "TOMLKit"),
                               .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: release),
        .target(name: "PSInspect", dependencies: ["PSCore"], swiftSettings: release),
        .target(name: "PSMPI", dependencies: ["CMPI", "PSCore"], swiftSettings: release),
        .target(name: "PSRank", dependencies: ["PSCore", "PSMPI",
                                              .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: release),
        .executableTarget(name: "pstrain-server", dependencies: ["PSRank"]),
        .executableTarget(name: "pstrain-worker", dependencies: ["PSRank"]),
        .executableTarget(name: "pstrain",
                          dependencies: ["PSCore", "PSInspect",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: release),
        .executableTarget(name: "pstrain-bench", dependencies: ["PSCore", "CPSKernels", "CXXHash"], swiftSettings: release),
        .testTarget(name: "PSCoreTests", dependencies: ["PSCore", "CXXHash"]),
        .testTarget(name: "IntegrationTests", dependencies: ["PSCore", "PSInspect"]),
    ],
    swiftLanguageModes: [.v5]
)
