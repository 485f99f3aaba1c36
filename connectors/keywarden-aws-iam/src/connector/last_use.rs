//! The last use of a user's access keys: from the credential report's slots where they can be
//! matched to the keys, else (or to complete a use without region and service) from
//! `GetAccessKeyLastUsed`.

use aws_smithy_types_convert::date_time::DateTimeExt;
use chrono::{DateTime, Utc};
use keywarden_connector::{ConnectorError, Credential, LastUse};

use super::{FROM_API, FROM_REPORT, UserScan};
use crate::client::{Clients, map_err, persist};
use crate::report::{self, KeySlot, Row, SlotUse};

impl UserScan<'_> {
    /// The last use of each of one user's access keys (`keys`: id and the ledger's view, in the
    /// order of `facts`: active, created), from the report's slots matched to the keys
    /// ([`Row::match_keys`]). A key in no slot is read with `GetAccessKeyLastUsed` when
    /// `read_missing`, else left `None`. Of two keys the report cannot tell apart only one is
    /// read with the API: the slot its answer matches is its own, the other slot the other's.
    pub(super) async fn key_uses(
        &self,
        row: Option<&Row>,
        keys: &[(&str, Option<&Credential>)],
        facts: &[(bool, Option<DateTime<Utc>>)],
        read_missing: bool,
    ) -> Result<Vec<Option<KeyUse>>, ConnectorError> {
        let matched = row.map_or_else(
            || vec![KeySlot::Missing; keys.len()],
            |row| row.match_keys(facts),
        );
        let mut out: Vec<Option<KeyUse>> = vec![None; keys.len()];
        for (i, (id, known)) in keys.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            out[i] = match (row, matched.get(i).copied().unwrap_or(KeySlot::Missing)) {
                (Some(row), KeySlot::Slot(slot)) => {
                    Some(self.last_use_from_slot(id, &row.keys[slot], *known).await?)
                }
                (Some(row), KeySlot::Ambiguous { other }) => {
                    // The ledger's use of this key names its slot if it still holds (an
                    // incremental scan); else the API's answer does.
                    let (got, slot) = match known.and_then(|it| slot_of_known(row, it)) {
                        Some(slot) => (
                            self.last_use_from_slot(id, &row.keys[slot], *known).await?,
                            Some(slot),
                        ),
                        None => {
                            let got = self.last_used_api(id).await?;
                            let slot = slot_use(&got.0).and_then(|used| {
                                row.slot_with_use(&used, got.1.as_deref(), got.2.as_deref())
                            });
                            (got, slot)
                        }
                    };
                    if let Some((other_id, other_known)) = keys.get(other)
                        && out[other].is_none()
                    {
                        out[other] = Some(match slot {
                            Some(slot) => {
                                self.last_use_from_slot(other_id, &row.keys[1 - slot], *other_known)
                                    .await?
                            }
                            None => self.last_used_api(other_id).await?,
                        });
                    }
                    Some(got)
                }
                _ if read_missing => Some(self.last_used_api(id).await?),
                _ => None,
            };
        }
        Ok(out)
    }

    /// The last use a report slot gives, completed by `GetAccessKeyLastUsed` when the report
    /// does not know it or has a date without region and service (which an earlier scan may
    /// already have fetched: `known` is the ledger's view of the key).
    /// Returns (last use, region, service).
    async fn last_use_from_slot(
        &self,
        key_id: &str,
        slot: &report::Slot,
        known: Option<&Credential>,
    ) -> Result<(LastUse, Option<String>, Option<String>), ConnectorError> {
        // The ledger's use of the key, with the region and service it had.
        let from_ledger = |it: &Credential| {
            (
                it.last_used.clone(),
                it.attributes.get("last_used_region").cloned(),
                it.attributes.get("last_used_service").cloned(),
            )
        };
        match &slot.last_used {
            // The report may be hours old: a use the ledger read key by key since wins.
            SlotUse::Never if let Some(known) = known.filter(|it| it.last_used.at().is_some()) => {
                Ok(from_ledger(known))
            }
            SlotUse::Never => Ok((LastUse::Never, None, None)),
            SlotUse::At(at) if slot.service.is_some() => Ok((
                LastUse::At {
                    at: *at,
                    source: FROM_REPORT.to_owned(),
                },
                slot.region.clone(),
                slot.service.clone(),
            )),
            // The ledger already has this use (or a later one, read key by key), with the
            // region and service it had.
            SlotUse::At(at)
                if let Some(known) = known.filter(|it| it.last_used.at() >= Some(*at)) =>
            {
                Ok(from_ledger(known))
            }
            SlotUse::At(_) | SlotUse::Unknown => self.last_used_api(key_id).await,
        }
    }

    /// `GetAccessKeyLastUsed` for one key: (last use, region, service). A key deleted since it
    /// was listed has an unknown last use (the next scan no longer lists it).
    async fn last_used_api(
        &self,
        key_id: &str,
    ) -> Result<(LastUse, Option<String>, Option<String>), ConnectorError> {
        match access_key_last_used(self.clients, key_id).await {
            Err(ConnectorError::NotFound(_)) => Ok((LastUse::Unknown, None, None)),
            other => other,
        }
    }
}

/// `GetAccessKeyLastUsed` of one key: (last use, region, service).
pub(crate) async fn access_key_last_used(
    clients: &Clients,
    key_id: &str,
) -> Result<(LastUse, Option<String>, Option<String>), ConnectorError> {
    let got = persist(clients, || async {
        clients
            .iam
            .get_access_key_last_used()
            .access_key_id(key_id)
            .send()
            .await
            .map_err(|err| map_err(&format!("iam:GetAccessKeyLastUsed {key_id}"), err))
    })
    .await?;
    Ok(last_used_of(got.access_key_last_used()))
}

/// Reads `GetAccessKeyLastUsed`'s answer: no date means never used since AWS began tracking.
fn last_used_of(
    used: Option<&aws_sdk_iam::types::AccessKeyLastUsed>,
) -> (LastUse, Option<String>, Option<String>) {
    let Some(used) = used else {
        return (LastUse::Unknown, None, None);
    };
    let known = |it: &str| (!matches!(it, "" | "N/A")).then(|| it.to_owned());
    match used.last_used_date().and_then(|it| it.to_chrono_utc().ok()) {
        Some(at) => (
            LastUse::At {
                at,
                source: FROM_API.to_owned(),
            },
            known(used.region()),
            known(used.service_name()),
        ),
        None => (LastUse::Never, None, None),
    }
}

/// A key's last use with its region and service.
type KeyUse = (LastUse, Option<String>, Option<String>);

/// The one slot whose use is the one the ledger holds for `known`.
fn slot_of_known(row: &Row, known: &Credential) -> Option<usize> {
    let used = slot_use(&known.last_used)?;
    let attribute = |name: &str| known.attributes.get(name).map(String::as_str);
    row.slot_with_use(
        &used,
        attribute("last_used_region"),
        attribute("last_used_service"),
    )
}

/// An API answer as a report slot would give it; `None` when there is nothing to match.
fn slot_use(used: &LastUse) -> Option<SlotUse> {
    match used {
        LastUse::At { at, .. } => Some(SlotUse::At(*at)),
        LastUse::Never => Some(SlotUse::Never),
        _ => None,
    }
}

/// Records region and service of the last use as attributes (dropping stale ones).
pub(super) fn set_use_attributes(
    credential: &mut Credential,
    region: Option<&str>,
    service: Option<&str>,
) {
    if credential.last_used.at().is_none() {
        credential.attributes.remove("last_used_region");
        credential.attributes.remove("last_used_service");
        return;
    }
    if let Some(region) = region {
        credential
            .attributes
            .insert("last_used_region".to_owned(), region.to_owned());
    }
    if let Some(service) = service {
        credential
            .attributes
            .insert("last_used_service".to_owned(), service.to_owned());
    }
}
