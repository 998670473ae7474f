//! Name validation (api.md §1.8, R2–R9, R66): user ids, channel names, topic names and
//! customType, each failing with the spec's error code and a reason naming the rule.

use crate::codes::ErrorCode;

/// Spec default for user id and channel name length, bytes (R2, R7).
pub const DEFAULT_MAX_NAME_BYTES: usize = 64;
/// Topic name length, bytes (R9).
pub const MAX_TOPIC_BYTES: usize = 16;
/// customType length, bytes (R66).
pub const MAX_CUSTOM_TYPE_BYTES: usize = 32;

/// How names are checked; per app, defaults from the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRules {
    /// Longest user id or channel name, in bytes (default 64).
    pub max_bytes: usize,
    /// Also allow `` ` `` (Agora's `EXTEND_CHANNEL_NAME`); `.` is always allowed.
    pub extended: bool,
}

impl Default for NameRules {
    fn default() -> Self {
        NameRules {
            max_bytes: DEFAULT_MAX_NAME_BYTES,
            extended: false,
        }
    }
}

/// A failed validation: the code to answer with and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The spec's error code.
    pub code: ErrorCode,
    /// Which rule the value broke.
    pub reason: String,
}

impl Invalid {
    fn new(code: ErrorCode, reason: String) -> Self {
        Invalid { code, reason }
    }
}

/// Whether `b` is in the character set S of api.md §1.8 (R3), plus `` ` `` when extended.
fn allowed(b: u8, extended: bool) -> bool {
    b.is_ascii_alphanumeric()
        || b" !#$%&()+-:;<=.>?@[]^_{}|~,".contains(&b)
        || (extended && b == b'`')
}

/// Shared rules R2–R5 for user ids and channel names; `what` names the value in reasons.
fn check_name(value: &str, rules: NameRules, code: ErrorCode, what: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new(code, format!("{what} must not be empty (R4)")));
    }
    if value == "null" {
        return Err(Invalid::new(
            code,
            format!("{what} must not be \"null\" (R4)"),
        ));
    }
    if value.len() > rules.max_bytes {
        return Err(Invalid::new(
            code,
            format!(
                "{what} is {} bytes, over the limit of {} (R2)",
                value.len(),
                rules.max_bytes
            ),
        ));
    }
    if value.starts_with('_') {
        return Err(Invalid::new(
            code,
            format!("{what} must not begin with '_' (R5)"),
        ));
    }
    if let Some(c) = value.bytes().find(|&b| !allowed(b, rules.extended)) {
        return Err(Invalid::new(
            code,
            format!("{what} contains a character outside the allowed set: byte 0x{c:02x} (R3)"),
        ));
    }
    Ok(())
}

/// Validates a user id (R2–R6): fails with −10006.
pub fn validate_user_id(value: &str, rules: NameRules) -> Result<(), Invalid> {
    check_name(value, rules, ErrorCode::InvalidUserId, "user id")
}

/// Validates a MESSAGE/STREAM channel name or USER-channel target (R7, R8): fails with −10008.
pub fn validate_channel_name(value: &str, rules: NameRules) -> Result<(), Invalid> {
    check_name(value, rules, ErrorCode::InvalidChannelName, "channel name")
}

/// Validates a topic name (R9): fails with −11008.
pub fn validate_topic_name(value: &str) -> Result<(), Invalid> {
    let rules = NameRules {
        max_bytes: MAX_TOPIC_BYTES,
        extended: false,
    };
    check_name(
        value,
        rules,
        ErrorCode::ChannelInvalidTopicName,
        "topic name",
    )
}

/// Validates a customType (R66): empty means "none" on the wire and is accepted here;
/// over 32 bytes fails with −11029.
pub fn validate_custom_type(value: &str) -> Result<(), Invalid> {
    if value.len() > MAX_CUSTOM_TYPE_BYTES {
        return Err(Invalid::new(
            ErrorCode::ChannelCustomTypeLengthOverflow,
            format!(
                "customType is {} bytes, over the limit of {MAX_CUSTOM_TYPE_BYTES} (R66)",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Longest presence state key, bytes (R12).
pub const MAX_STATE_KEY_BYTES: usize = 32;

/// Validates a presence state key (R12): 1–32 bytes of the R3 set; a bad character or
/// an empty key fails with −13006, a key over 32 bytes with −13008.
pub fn validate_state_key(value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new(
            ErrorCode::PresenceInvalidStateKey,
            "state key must not be empty (R12)".into(),
        ));
    }
    if let Some(c) = value.bytes().find(|&b| !allowed(b, false)) {
        return Err(Invalid::new(
            ErrorCode::PresenceInvalidStateKey,
            format!("state key contains a character outside the allowed set: byte 0x{c:02x} (R12)"),
        ));
    }
    if value.len() > MAX_STATE_KEY_BYTES {
        return Err(Invalid::new(
            ErrorCode::PresenceStateKeySizeOverflow,
            format!(
                "state key is {} bytes, over the limit of {MAX_STATE_KEY_BYTES} (R12)",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Longest lock name, bytes (R10, R2).
pub const MAX_LOCK_NAME_BYTES: usize = 64;
/// Longest metadata key, bytes (R11).
pub const MAX_METADATA_KEY_BYTES: usize = 32;

/// Validates a lock name (R10): R2–R5 rules; fails with −14005, or −12007 when
/// `in_metadata_options` (the name is `MetadataOptions.lockName`).
pub fn validate_lock_name(value: &str, in_metadata_options: bool) -> Result<(), Invalid> {
    let code = if in_metadata_options {
        ErrorCode::StorageInvalidLockName
    } else {
        ErrorCode::LockInvalidName
    };
    let rules = NameRules {
        max_bytes: MAX_LOCK_NAME_BYTES,
        extended: false,
    };
    check_name(value, rules, code, "lock name")
}

/// Validates a metadata key (R11): 1–32 bytes of the R3 set, no leading `_`; fails with
/// −12009, or −12011 when only the length is wrong. (`"null"` is a valid key: R4 is about
/// user ids.)
pub fn validate_metadata_key(value: &str) -> Result<(), Invalid> {
    let code = ErrorCode::StorageInvalidKey;
    if value.is_empty() {
        return Err(Invalid::new(
            code,
            "metadata key must not be empty (R11)".into(),
        ));
    }
    if value.starts_with('_') {
        return Err(Invalid::new(
            code,
            "metadata key must not begin with '_' (R11)".into(),
        ));
    }
    if let Some(c) = value.bytes().find(|&b| !allowed(b, false)) {
        return Err(Invalid::new(
            code,
            format!(
                "metadata key contains a character outside the allowed set: byte 0x{c:02x} (R11)"
            ),
        ));
    }
    if value.len() > MAX_METADATA_KEY_BYTES {
        return Err(Invalid::new(
            ErrorCode::StorageKeyLengthOverflow,
            format!(
                "metadata key is {} bytes, over the limit of {MAX_METADATA_KEY_BYTES} (R11)",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Validates an app id (R1): 32 ASCII alphanumerics, else −10003.
pub fn validate_app_id(value: &str) -> Result<(), Invalid> {
    if value.len() == 32 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(Invalid::new(
            ErrorCode::InvalidAppId,
            "app id must be exactly 32 characters 0-9, A-Z, a-z (R1)".to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> NameRules {
        NameRules::default()
    }

    #[test]
    fn r2_to_r5_user_ids() {
        assert!(validate_user_id("alice", r()).is_ok());
        assert!(validate_user_id("a.b c!#$%&()+-:;<=>?@[]^_{}|~,", r()).is_ok());
        assert!(validate_user_id(&"a".repeat(64), r()).is_ok());
        for bad in ["", "null", "_x", "a/b", "é", "a\0", "a`b", "a*b"] {
            let e = validate_user_id(bad, r()).expect_err(bad);
            assert_eq!(e.code, ErrorCode::InvalidUserId, "{bad}");
        }
        let e = validate_user_id(&"a".repeat(65), r()).expect_err("65 bytes");
        assert!(e.reason.contains("65 bytes"), "{}", e.reason);
        assert!(validate_user_id("Null", r()).is_ok(), "R15: case-sensitive");
    }

    #[test]
    fn r7_channel_names_and_extended_set() {
        assert_eq!(
            validate_channel_name("a`b", r()).map_err(|e| e.code),
            Err(ErrorCode::InvalidChannelName)
        );
        let ext = NameRules {
            extended: true,
            ..r()
        };
        assert!(validate_channel_name("a`b", ext).is_ok());
    }

    #[test]
    fn r12_state_keys() {
        assert!(validate_state_key("mood").is_ok());
        assert!(
            validate_state_key("_x").is_ok(),
            "no leading-underscore rule for keys"
        );
        let code = |k: &str| validate_state_key(k).map_err(|e| e.code);
        assert_eq!(code(""), Err(ErrorCode::PresenceInvalidStateKey));
        assert_eq!(code("a/b"), Err(ErrorCode::PresenceInvalidStateKey));
        assert!(validate_state_key(&"k".repeat(32)).is_ok());
        assert_eq!(
            code(&"k".repeat(33)),
            Err(ErrorCode::PresenceStateKeySizeOverflow)
        );
    }

    #[test]
    fn r9_topics_and_r66_custom_type() {
        assert!(validate_topic_name(&"t".repeat(16)).is_ok());
        assert_eq!(
            validate_topic_name(&"t".repeat(17)).map_err(|e| e.code),
            Err(ErrorCode::ChannelInvalidTopicName)
        );
        assert!(validate_custom_type(&"c".repeat(32)).is_ok());
        assert_eq!(
            validate_custom_type(&"c".repeat(33)).map_err(|e| e.code),
            Err(ErrorCode::ChannelCustomTypeLengthOverflow)
        );
    }
}
