// swift-tools-version:6.0
// pstrain: a parameter-server training coordinator over MPI.
//
// Layering (see docs/architecture.md):
//   CBLAS, CZlib, CZstd,       C at the edge (system libraries, small kernels)
//   CPSKernels
//   PSCore                     model, optimizer, data, config (TOML via TOMLKit), run log, frames,
//                              server/worker logic over a Transport protocol;
//                              knows nothing of MPI
//   CMPI, PSMPI                Open MPI behind a prefixed shim; MPITransport
//   PSRank                     what a rank executable does (argument parsing,
//                              hello exchange, error reporting)
//   pstrain-server/-worker     thin main.swift files
//   pstrain                    launcher and tools
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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
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
        .target(name: "CPSKernels",
                cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "PSCore",
                dependencies: ["CBLAS", "CZlib", "CZstd", "CPSKernels",
                               .product(name: "TOMLKit", package: "TOMLKit")],
                swiftSettings: release),
        .target(name: "PSMPI", dependencies: ["CMPI", "PSCore"], swiftSettings: release),
        .target(name: "PSRank", dependencies: ["PSCore", "PSMPI"], swiftSettings: release),
        .executableTarget(name: "pstrain-server", dependencies: ["PSRank"]),
        .executableTarget(name: "pstrain-worker", dependencies: ["PSRank"]),
        .executableTarget(name: "pstrain",
                          dependencies: ["PSCore",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: release),
        .executableTarget(name: "pstrain-bench", dependencies: ["PSCore", "CPSKernels"], swiftSettings: release),
        .testTarget(name: "PSCoreTests", dependencies: ["PSCore"]),
        .testTarget(name: "IntegrationTests", dependencies: ["PSCore"]),
    ],
    swiftLanguageModes: [.v5]
)
