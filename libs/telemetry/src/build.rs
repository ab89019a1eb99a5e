//! Build metadata, injected at compile time by the release build (the
//! Dockerfile's build arguments `CADENZA_VERSION`, `CADENZA_GIT_COMMIT`,
//! `CADENZA_BUILD_TIME`) and reported by every service at start-up, in
//! `cadenza_build_info` and through `cadenza.v1.VersionService`.

/// What a binary knows about how it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_time: &'static str,
}

/// This binary's build.
pub const BUILD: BuildInfo = BuildInfo {
    version: match option_env!("CADENZA_VERSION") {
        Some(version) => version,
        None => env!("CARGO_PKG_VERSION"),
    },
    git_commit: match option_env!("CADENZA_GIT_COMMIT") {
        Some(commit) => commit,
        None => "unknown",
    },
    build_time: match option_env!("CADENZA_BUILD_TIME") {
        Some(time) => time,
        None => "unknown",
    },
};

/// Logs the build at start-up and sets `cadenza_build_info{service,version,commit} 1`.
pub fn announce(service: &'static str) {
    tracing::info!(
        service,
        version = BUILD.version,
        git_commit = BUILD.git_commit,
        build_time = BUILD.build_time,
        "starting"
    );
    metrics::gauge!(
        "cadenza_build_info",
        "service" => service,
        "version" => BUILD.version,
        "commit" => BUILD.git_commit
    )
    .set(1.0);
}
