//! Service records (token.md §5): the [`Service`] enum, its constructors that mirror the
//! reference builders' privilege choices, and its encoding and decoding (T6–T11).

use std::collections::BTreeMap;

use crate::codec::{Reader, Writer};
use crate::error::{BuildError, TokenError};
use crate::ids::{privilege, service_type};

/// RTC role for builders (token.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtcRole {
    /// Join plus publish audio, video and data.
    Publisher = 1,
    /// Join only.
    Subscriber = 2,
}

/// One (resource type, permission type) entry of an RTM2 permission tree (token.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rtm2Permission {
    /// Resource type (see [`crate::rtm2`]: 0 message channels … 4 users).
    pub resource_type: u16,
    /// Permission type (0 read, 1 write).
    pub permission_type: u16,
    /// Resource names, in the order given.
    pub resources: Vec<String>,
}

/// One type-specific field of a service this server does not interpret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldValue {
    /// A `string` field (channel name, account, user id, uuid).
    Str(String),
    /// An `i16` field (the APaaS role, read as signed, §15).
    I16(i16),
}

/// Per-privilege lifetimes of an RTC service, seconds from `issue_ts` (0 = no own limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtcPrivilegeExpiry {
    /// joinChannel (1).
    pub join_channel: u32,
    /// publishAudioStream (2).
    pub publish_audio: u32,
    /// publishVideoStream (3).
    pub publish_video: u32,
    /// publishDataStream (4).
    pub publish_data: u32,
}

/// A decoded (or to-be-encoded) service record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// Type 1: RTC channel access (T8).
    Rtc {
        /// The channel the token is for.
        channel_name: String,
        /// The uid as text; empty = any user (wildcard).
        uid: String,
        /// Privilege id → lifetime in seconds from `issue_ts` (0 = no own limit).
        privileges: BTreeMap<u16, u32>,
    },
    /// Type 2: RTM login (T9).
    Rtm {
        /// The login user id; empty = any user (wildcard, T44).
        user_id: String,
        /// Privilege id → lifetime in seconds from `issue_ts` (0 = no own limit).
        privileges: BTreeMap<u16, u32>,
    },
    /// Type 8: RTM with a resource permission tree (T10, T11, T46).
    Rtm2 {
        /// The login user id; empty = any user (wildcard).
        user_id: String,
        /// Privilege id → lifetime in seconds from `issue_ts` (0 = no own limit).
        privileges: BTreeMap<u16, u32>,
        /// The permission tree, flattened in token order.
        permissions: Vec<Rtm2Permission>,
    },
    /// Types 3–7, 9 and 10: parsed so that later services are still seen (T7).
    Other {
        /// The service type number.
        service_type: u16,
        /// Privilege id → lifetime in seconds from `issue_ts`.
        privileges: BTreeMap<u16, u32>,
        /// The type-specific fields in token order (layout of token.md §5).
        fields: Vec<FieldValue>,
    },
}

#[derive(Clone, Copy)]
enum FieldKind {
    Str,
    I16,
}

/// The type-specific field layout of a service type handled by [`Service::Other`].
fn other_layout(service_type: u16) -> Option<&'static [FieldKind]> {
    use FieldKind::{I16, Str};
    match service_type {
        service_type::STREAMING | service_type::FCDN => Some(&[Str, Str]),
        service_type::CHAT => Some(&[Str]),
        service_type::APAAS => Some(&[Str, Str, I16]),
        service_type::FPA | service_type::CONVOAI | service_type::STT => Some(&[]),
        _ => None,
    }
}

impl Service {
    /// RTM service as `RtmTokenBuilder.buildToken` writes it: login = `login_expire`.
    pub fn rtm(user_id: &str, login_expire: u32) -> Service {
        Service::Rtm {
            user_id: user_id.to_owned(),
            privileges: BTreeMap::from([(privilege::RTM_LOGIN, login_expire)]),
        }
    }

    /// RTC service as `buildTokenWithUserAccount` writes it: join, plus publish audio,
    /// video and data for a publisher, all = `privilege_expire`. `uid` `""` is the wildcard.
    pub fn rtc(channel_name: &str, uid: &str, role: RtcRole, privilege_expire: u32) -> Service {
        let mut privileges = BTreeMap::from([(privilege::JOIN_CHANNEL, privilege_expire)]);
        if role == RtcRole::Publisher {
            for id in [
                privilege::PUBLISH_AUDIO_STREAM,
                privilege::PUBLISH_VIDEO_STREAM,
                privilege::PUBLISH_DATA_STREAM,
            ] {
                privileges.insert(id, privilege_expire);
            }
        }
        Service::Rtc {
            channel_name: channel_name.to_owned(),
            uid: uid.to_owned(),
            privileges,
        }
    }

    /// RTC service as `BuildTokenWithUserAccountAndPrivilege` writes it: all four
    /// privileges with their own lifetimes.
    pub fn rtc_with_privileges(
        channel_name: &str,
        uid: &str,
        expiry: RtcPrivilegeExpiry,
    ) -> Service {
        Service::Rtc {
            channel_name: channel_name.to_owned(),
            uid: uid.to_owned(),
            privileges: BTreeMap::from([
                (privilege::JOIN_CHANNEL, expiry.join_channel),
                (privilege::PUBLISH_AUDIO_STREAM, expiry.publish_audio),
                (privilege::PUBLISH_VIDEO_STREAM, expiry.publish_video),
                (privilege::PUBLISH_DATA_STREAM, expiry.publish_data),
            ]),
        }
    }

    /// RTM2 service as `RtmTokenBuilder.buildTokenWithPermissions` writes it: login =
    /// `login_expire`, with the given permission tree.
    pub fn rtm2(user_id: &str, permissions: Vec<Rtm2Permission>, login_expire: u32) -> Service {
        Service::Rtm2 {
            user_id: user_id.to_owned(),
            privileges: BTreeMap::from([(privilege::RTM_LOGIN, login_expire)]),
            permissions,
        }
    }

    /// The service type number (token.md §5).
    pub fn service_type(&self) -> u16 {
        match self {
            Service::Rtc { .. } => service_type::RTC,
            Service::Rtm { .. } => service_type::RTM,
            Service::Rtm2 { .. } => service_type::RTM2,
            Service::Other { service_type, .. } => *service_type,
        }
    }

    /// The lower-case service name (`"rtc"`, `"rtm"`, `"rtm2"`, …; `"unknown"` otherwise).
    pub fn name(&self) -> &'static str {
        crate::ids::service_type_name(self.service_type()).unwrap_or("unknown")
    }

    /// The privilege map: id → lifetime in seconds from `issue_ts` (0 = no own limit).
    pub fn privileges(&self) -> &BTreeMap<u16, u32> {
        match self {
            Service::Rtc { privileges, .. }
            | Service::Rtm { privileges, .. }
            | Service::Rtm2 { privileges, .. }
            | Service::Other { privileges, .. } => privileges,
        }
    }

    /// Reads one service record (T6). `Ok(None)` means an unknown service type, whose
    /// length cannot be known, so parsing stops there (T57).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Option<Service>, TokenError> {
        let service_type = r.u16()?;
        let service = match service_type {
            service_type::RTC => {
                let privileges = r.privilege_map()?;
                let channel_name = r.string()?;
                let uid = r.string()?;
                Service::Rtc {
                    channel_name,
                    uid,
                    privileges,
                }
            }
            service_type::RTM => {
                let privileges = r.privilege_map()?;
                let user_id = r.string()?;
                Service::Rtm {
                    user_id,
                    privileges,
                }
            }
            service_type::RTM2 => {
                let privileges = r.privilege_map()?;
                let user_id = r.string()?;
                let permissions = read_permissions(r)?;
                Service::Rtm2 {
                    user_id,
                    privileges,
                    permissions,
                }
            }
            other => {
                let Some(layout) = other_layout(other) else {
                    return Ok(None);
                };
                let privileges = r.privilege_map()?;
                let mut fields = Vec::with_capacity(layout.len());
                for kind in layout {
                    fields.push(match kind {
                        FieldKind::Str => FieldValue::Str(r.string()?),
                        FieldKind::I16 => FieldValue::I16(r.i16()?),
                    });
                }
                Service::Other {
                    service_type: other,
                    privileges,
                    fields,
                }
            }
        };
        Ok(Some(service))
    }

    /// Appends this service record (T6, T10).
    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), BuildError> {
        w.u16(self.service_type());
        w.privilege_map(self.privileges())?;
        match self {
            Service::Rtc {
                channel_name, uid, ..
            } => {
                w.string(channel_name, "channel_name")?;
                w.string(uid, "uid")
            }
            Service::Rtm { user_id, .. } => w.string(user_id, "user_id"),
            Service::Rtm2 {
                user_id,
                permissions,
                ..
            } => {
                w.string(user_id, "user_id")?;
                write_permissions(w, permissions)
            }
            Service::Other {
                service_type,
                fields,
                ..
            } => write_other(w, *service_type, fields),
        }
    }
}

fn read_permissions(r: &mut Reader<'_>) -> Result<Vec<Rtm2Permission>, TokenError> {
    let mut permissions = Vec::new();
    let resource_type_count = r.u16()?;
    for _ in 0..resource_type_count {
        let resource_type = r.u16()?;
        let permission_count = r.u16()?;
        for _ in 0..permission_count {
            let permission_type = r.u16()?;
            let resource_count = r.u16()?;
            // No pre-allocation from the untrusted count: every name needs >= 2 bytes.
            let mut resources = Vec::new();
            for _ in 0..resource_count {
                resources.push(r.string()?);
            }
            permissions.push(Rtm2Permission {
                resource_type,
                permission_type,
                resources,
            });
        }
    }
    Ok(permissions)
}

/// Writes the tree with resource and permission types ascending (T10); a repeated
/// (resource type, permission type) pair keeps its last resource list, as the reference's
/// `Rtm2Permissions.add` does.
fn write_permissions(w: &mut Writer, permissions: &[Rtm2Permission]) -> Result<(), BuildError> {
    let mut tree: BTreeMap<u16, BTreeMap<u16, &[String]>> = BTreeMap::new();
    for p in permissions {
        tree.entry(p.resource_type)
            .or_default()
            .insert(p.permission_type, &p.resources);
    }
    w.count(tree.len(), "RTM2 resource types")?;
    for (resource_type, by_permission) in &tree {
        w.u16(*resource_type);
        w.count(by_permission.len(), "RTM2 permission types")?;
        for (permission_type, resources) in by_permission {
            w.u16(*permission_type);
            w.count(resources.len(), "RTM2 resources")?;
            for name in *resources {
                w.string(name, "RTM2 resource name")?;
            }
        }
    }
    Ok(())
}

fn write_other(w: &mut Writer, service_type: u16, fields: &[FieldValue]) -> Result<(), BuildError> {
    let layout = other_layout(service_type).ok_or(BuildError::InvalidService(service_type))?;
    if layout.len() != fields.len() {
        return Err(BuildError::InvalidService(service_type));
    }
    for (kind, field) in layout.iter().zip(fields) {
        match (kind, field) {
            (FieldKind::Str, FieldValue::Str(s)) => w.string(s, "service field")?,
            (FieldKind::I16, FieldValue::I16(v)) => w.i16(*v),
            _ => return Err(BuildError::InvalidService(service_type)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(service: &Service) -> Service {
        let mut w = Writer::default();
        service.write(&mut w).unwrap();
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        let back = Service::read(&mut r).unwrap().unwrap();
        assert!(r.rest().is_empty());
        back
    }

    #[test]
    fn t6_every_known_service_roundtrips() {
        let services = [
            Service::rtc("room", "", RtcRole::Publisher, 0),
            Service::rtm("alice", 60),
            Service::rtm2(
                "dave",
                vec![Rtm2Permission {
                    resource_type: 0,
                    permission_type: 1,
                    resources: vec!["a".into()],
                }],
                60,
            ),
            Service::Other {
                service_type: service_type::APAAS,
                privileges: BTreeMap::from([(1, 5)]),
                fields: vec![
                    FieldValue::Str("r".into()),
                    FieldValue::Str("u".into()),
                    FieldValue::I16(-1),
                ],
            },
            Service::Other {
                service_type: service_type::STT,
                privileges: BTreeMap::new(),
                fields: vec![],
            },
        ];
        for s in &services {
            assert_eq!(&roundtrip(s), s);
        }
    }

    #[test]
    fn t10_rtm2_tree_is_written_in_ascending_type_order() {
        let perm = |rt, pt, names: &[&str]| Rtm2Permission {
            resource_type: rt,
            permission_type: pt,
            resources: names.iter().map(|s| s.to_string()).collect(),
        };
        let s = Service::rtm2(
            "d",
            vec![
                perm(1, 0, &["x"]),
                perm(0, 1, &["b"]),
                perm(0, 0, &["c", "a"]),
            ],
            1,
        );
        let Service::Rtm2 { permissions, .. } = roundtrip(&s) else {
            panic!("not rtm2")
        };
        assert_eq!(
            permissions,
            vec![
                perm(0, 0, &["c", "a"]),
                perm(0, 1, &["b"]),
                perm(1, 0, &["x"])
            ]
        );
    }

    #[test]
    fn t57_unknown_service_type_is_not_an_error() {
        let bytes = [11, 0, 0, 0];
        assert_eq!(Service::read(&mut Reader::new(&bytes)), Ok(None));
    }

    #[test]
    fn other_service_with_wrong_layout_is_refused() {
        let bad = Service::Other {
            service_type: service_type::CHAT,
            privileges: BTreeMap::new(),
            fields: vec![],
        };
        assert_eq!(
            bad.write(&mut Writer::default()),
            Err(BuildError::InvalidService(5))
        );
        let unknown = Service::Other {
            service_type: 42,
            privileges: BTreeMap::new(),
            fields: vec![],
        };
        assert_eq!(
            unknown.write(&mut Writer::default()),
            Err(BuildError::InvalidService(42))
        );
        let rtc_as_other = Service::Other {
            service_type: 1,
            privileges: BTreeMap::new(),
            fields: vec![],
        };
        assert!(rtc_as_other.write(&mut Writer::default()).is_err());
    }
}
