import CNetlink

/// The netlink library under every kernel change RouteSetup makes.
public enum NetlinkLibrary {
    /// The libnl version the process runs with, e.g. "3.7.0".
    ///
    /// The corresponding C symbols are `nl_ver_maj`, `nl_ver_min` and `nl_ver_mic`.
    public static var version: String { "\(nl_ver_maj).\(nl_ver_min).\(nl_ver_mic)" }
}
