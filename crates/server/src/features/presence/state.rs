//! A member's temporary state (R127–R129): the checks of state items, and the state a
//! member enters a channel with (what it set before entering, then what it brings).

use crate::node::config::AppLimits;
use crate::session::Session;
use crate::wire::Failure;
use std::collections::HashMap;
use switchboard_engine::{ChannelKey, State};
use switchboard_protocol::{ErrorCode, names};

/// Checks the state a subscribe or join brings (R12, R128) against the limits, together
/// with what was set before entering; before anything changes (R171).
pub(crate) fn check_entering_state(
    session: &Session,
    key: &ChannelKey,
    given: &HashMap<String, String>,
) -> Result<(), Failure> {
    let limits = &session.app.limits;
    if given.is_empty() {
        return Ok(());
    }
    check_items(limits, given)?;
    let st = session.lock();
    let pending = st.pending_states.get(key);
    let added = given
        .keys()
        .filter(|k| !pending.is_some_and(|p| p.contains_key(*k)))
        .count();
    if pending.map_or(0, |p| p.len()) + added > limits.max_state_keys {
        return Err(too_many_keys(limits));
    }
    Ok(())
}

/// The state a member enters `key` with: what it set before entering (R129), then
/// `given` with the request.
pub(crate) fn entering_state(
    session: &Session,
    key: &ChannelKey,
    given: &HashMap<String, String>,
) -> State {
    let mut state = session
        .lock()
        .pending_states
        .remove(key)
        .unwrap_or_default();
    state.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    state
}

/// Checks state items against R12 and R128.
pub(crate) fn check_items(
    limits: &AppLimits,
    items: &HashMap<String, String>,
) -> Result<(), Failure> {
    if items.is_empty() {
        return Err(Failure::new(
            ErrorCode::PresenceInvalidArgument,
            "setState needs at least one key (R128)",
        ));
    }
    for (k, v) in items {
        names::validate_state_key(k)?;
        if v.len() > limits.max_state_value_bytes {
            return Err(Failure::new(
                ErrorCode::PresenceStateValueSizeOverflow,
                format!(
                    "the value of {k} is {} bytes, over the limit of {} (R128)",
                    v.len(),
                    limits.max_state_value_bytes
                ),
            ));
        }
    }
    if items.len() > limits.max_state_keys {
        return Err(too_many_keys(limits));
    }
    Ok(())
}

pub(crate) fn too_many_keys(limits: &AppLimits) -> Failure {
    Failure::new(
        ErrorCode::PresenceStateCountOverflow,
        format!(
            "the state would have more than {} keys (R128)",
            limits.max_state_keys
        ),
    )
}
