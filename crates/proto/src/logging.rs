//! MCP log levels: the eight RFC 5424 severities as `logging/setLevel`,
//! `notifications/message` and the 2026-07-28 `_meta` key
//! `io.modelcontextprotocol/logLevel` spell them, and their order. Whoever
//! filters log messages by a client's chosen level compares these ranks,
//! so the order is written down once.

/// The level names, least severe first: a level's index is its rank.
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// The rank of a level name, 0 (`debug`) to 7 (`emergency`); `None` for a
/// name MCP does not define. A message is sent when its rank is at least
/// the rank of the level the client asked for.
pub fn log_level_rank(level: &str) -> Option<u8> {
    LOG_LEVELS
        .iter()
        .position(|name| *name == level)
        .and_then(|rank| u8::try_from(rank).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_severity() {
        assert_eq!(log_level_rank("debug"), Some(0));
        assert_eq!(log_level_rank("info"), Some(1));
        assert_eq!(log_level_rank("warning"), Some(3));
        assert_eq!(log_level_rank("emergency"), Some(7));
        assert_eq!(log_level_rank("warn"), None);
        assert_eq!(log_level_rank("INFO"), None);
        assert_eq!(log_level_rank(""), None);
        for pair in LOG_LEVELS.windows(2) {
            assert!(
                log_level_rank(pair[0]) < log_level_rank(pair[1]),
                "{pair:?}"
            );
        }
    }
}
