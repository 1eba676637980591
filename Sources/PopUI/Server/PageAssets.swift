import Foundation
import Hummingbird

/// The page: index.html, dashboard.css and dashboard.js, shipped as pop's resources and held in memory.
struct PageAssets: Sendable {
    struct Asset: Sendable {
        var contentType: String
        var bytes: ByteBuffer
        var etag: String
    }

    private let assets: [String: Asset]

    /// Reads the page from the module's resources.
    init() throws {
        var assets: [String: Asset] = [:]
        let files = [
            ("/", "index.html", "text/html; charset=utf-8"),
            ("/dashboard.css", "dashboard.css", "text/css; charset=utf-8"),
            ("/dashboard.js", "dashboard.js", "text/javascript; charset=utf-8"),
        ]
        for (path, file, type) in files {
            guard let url = Bundle.module.url(forResource: file, withExtension: nil, subdirectory: "Page"),
                let data = try? Data(contentsOf: url)
            else {
                throw DashboardStartError("The dashboard's page \(file) is missing from pop's resources (pop_PopUI.resources beside the pop executable).")
            }
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in data {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
            assets[path] = Asset(
                contentType: type, bytes: ByteBuffer(bytes: data), etag: "\"\(String(hash, radix: 16))\"")
        }
        self.assets = assets
    }

    /// The response for `path`, or nil when it is not part of the page.
    func response(_ path: String, ifNoneMatch: String?) -> Response? {
        guard let asset = assets[path] else { return nil }
        if ifNoneMatch == asset.etag {
            return Response(status: .notModified, headers: [.eTag: asset.etag])
        }
        return Response(
            status: .ok,
            headers: [.contentType: asset.contentType, .eTag: asset.etag, .cacheControl: "no-cache"],
            body: ResponseBody(byteBuffer: asset.bytes))
    }
}

/// Why the dashboard could not start.
public struct DashboardStartError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
