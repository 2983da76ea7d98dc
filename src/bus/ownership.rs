//! Ownership: with several instances on one NATS and Redis, each tenant's
//! lanes are pulled by one instance at a time, its owner, so an order's
//! commands are decided in stream order by one process. Built on JetStream
//! key-value buckets, no consensus of orderd's own:
//!
//! - **Members** (`<prefix>_members`): each instance puts its id there every
//!   quarter lease; the bucket's `max_age` (the lease) removes the key of an
//!   instance that stopped renewing. The live instances are the keys present.
//! - **Owners** (`<prefix>_owners`): one key per unit (a tenant, or with
//!   `ownership.partitions` above 1 one partition of its orders:
//!   [`Unit`]), its value the owning instance's id. Every change is a
//!   compare-and-set on the key's revision, so two instances never both
//!   take a unit.
//! - **Who should own a unit**: rendezvous hashing with bounded load over a
//!   tenant's units ([`assign`]): every instance computes the same answer
//!   from the same members, each gets ⌊P/N⌋ or ⌈P/N⌉ of a tenant's P
//!   partitions, and a join or a leave moves about a share of them (with
//!   one partition: the live instance that ranks first, [`owner_of`], the
//!   ranking of the releases before partitions, so a rolling upgrade does
//!   not leave a tenant between two rankings).
//!
//! The fence, step by step: an instance pulls a tenant's lanes only while
//! the owners key names it AND its own member key was renewed less than two
//! thirds of a lease ago (a watchdog checks every twelfth of a lease).
//! Another instance takes the tenant over (compare-and-set on the owners
//! key) only once the owner's member key is gone, which the server does a
//! whole lease after the owner's last renewal: by then the owner has
//! stopped pulling for at least a quarter of a lease. The claim's revision
//! is its epoch: the new owner raises the tenant's epoch in Redis before it
//! pulls (`crate::store` fence), and every write of the tenant's orders
//! must carry the stored epoch, so an owner that stalled past its lease
//! cannot write when it wakes, whatever the timing. The new owner
//! reads every unacknowledged message again from the lane's ack floor, in
//! stream order (`crate::intake::consumers::take_over`). A graceful hand-over (a
//! join, or shutdown) does not wait for the lease: the owner stops pulling,
//! waits for its commands in flight, then deletes its owners key.
//!
//! This module is the KV side and the pure ranking; the intake's lanes
//! (`crate::intake::lanes`) act on it, and the read service's health shows
//! it.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::TryStreamExt;

use orderd_core::{OrderId, TenantId};

use super::BusError;
use crate::settings::Settings;
use crate::subjects::{self, Unit};
use crate::telemetry;

/// FNV-1a, 64 bits: a hash that every instance computes alike, whatever its
/// build (the standard library's hasher may change between releases).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The member that should own `unit` (by its key, a tenant's name for a
/// whole tenant): the one with the highest rendezvous score (ties, which
/// need equal hashes, go to the smaller id). `None` when there are no
/// members.
pub fn owner_of<'a>(unit: &str, members: &'a [String]) -> Option<&'a str> {
    members
        .iter()
        .map(|m| (fnv1a(&[m.as_bytes(), unit.as_bytes()]), m))
        .max_by(|(a, ma), (b, mb)| a.cmp(b).then_with(|| mb.cmp(ma)))
        .map(|(_, m)| m.as_str())
}

/// Spreads a hash's bits over all 64 (the SplitMix64 finalizer): FNV-1a
/// of keys that differ in their last byte differ little in their high
/// bits, and the bounded load then moves more at a join.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Who should own each of one tenant's units (`units`, by key): rendezvous
/// hashing with bounded load. The (unit, member) pairs are taken by
/// descending score, and a member takes a unit while it holds fewer than
/// ⌊P/N⌋, or ⌊P/N⌋ + 1 for the first P mod N members to get there; so
/// every member gets ⌊P/N⌋ or ⌈P/N⌉ of the tenant's P units, every
/// instance computes the same from the same members, and a join or a
/// leave moves about P/N of them. (A whole tenant, one unit, is placed by
/// [`owner_of`] instead, as before partitions existed.)
pub fn assign<'a>(units: &[String], members: &'a [String]) -> Vec<Option<&'a str>> {
    let mut out = vec![None; units.len()];
    if members.is_empty() {
        return out;
    }
    let (base, mut extra) = (units.len() / members.len(), units.len() % members.len());
    let mut pairs: Vec<(u64, &String, usize, usize)> = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        for (m, member) in members.iter().enumerate() {
            let score = mix(fnv1a(&[member.as_bytes(), unit.as_bytes()]));
            pairs.push((score, member, u, m));
        }
    }
    pairs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)).then(a.2.cmp(&b.2)));
    let mut load = vec![0_usize; members.len()];
    for (_, member, u, m) in pairs {
        if out[u].is_some() {
            continue;
        }
        if load[m] < base || (load[m] == base && extra > 0) {
            if load[m] == base {
                extra -= 1;
            }
            load[m] += 1;
            out[u] = Some(member.as_str());
        }
    }
    out
}

/// A tenant's owners key as read: who, and the revision to compare against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The owning instance's id.
    pub owner: String,
    /// The key's revision.
    pub revision: u64,
}

/// The two buckets, and this instance's id.
#[derive(Clone)]
pub struct Ownership {
    members: kv::Store,
    owners: kv::Store,
    me: String,
    lease: Duration,
    /// When the owners bucket was created (ms): the generation of every
    /// claim's epoch, so a bucket made anew still orders after the old.
    generation: u64,
    /// How many partitions each tenant's orders are spread over.
    parts: u16,
    /// The units whose lanes this instance pulls now: only their live
    /// order actors are known to hold the latest state.
    deciding: Arc<RwLock<HashSet<Unit>>>,
}

/// The partitions of one tenant this instance decides now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The tenant.
    pub tenant: TenantId,
    parts: u16,
    mine: Vec<u16>,
}

impl Decided {
    /// Whether `order` (of this tenant) is one this instance decides.
    pub fn holds(&self, order: OrderId) -> bool {
        self.parts <= 1
            || self
                .mine
                .contains(&subjects::partition_of(order, self.parts))
    }

    /// This instance's share of `n` things of the tenant spread evenly
    /// over its partitions: all of them when it decides every partition,
    /// else `n` times the part of the partitions it decides (rounded), so
    /// the shares of all instances add up to about `n`.
    pub fn share(&self, n: u64) -> u64 {
        let parts = u64::from(self.parts.max(1));
        let mine = u64::try_from(self.mine.len())
            .unwrap_or(u64::MAX)
            .min(parts);
        if mine == parts {
            return n;
        }
        n.saturating_mul(mine).saturating_add(parts / 2) / parts
    }

    /// How many of the tenant's orders to read to find about `n` of its
    /// own: reads by tenant also return the other partitions' orders.
    pub fn widen(&self, n: usize) -> usize {
        let mine = self.mine.len().max(1);
        n.saturating_mul(usize::from(self.parts.max(1)))
            .div_ceil(mine)
    }
}

fn kv_err(what: &'static str) -> impl Fn(String) -> BusError {
    move |why| BusError::Stream { stream: what, why }
}

impl Ownership {
    /// Opens (creating when needed) the two buckets; `me` is this
    /// instance's id, unique per process start.
    pub async fn open(
        js: &jetstream::Context,
        settings: &Settings,
        me: String,
    ) -> Result<Self, BusError> {
        let lease = Duration::from_millis(settings.ownership.lease_ms);
        let prefix = &settings.nats.consumer_prefix;
        let members = bucket(
            js,
            kv::Config {
                bucket: subjects::members_bucket(prefix),
                description: "orderd: live instances (a key expires unless renewed)".into(),
                history: 1,
                max_age: lease,
                storage: jetstream::stream::StorageType::File,
                num_replicas: settings.nats.replicas,
                ..Default::default()
            },
        )
        .await?;
        let owners = bucket(
            js,
            kv::Config {
                bucket: subjects::owners_bucket(prefix),
                description: "orderd: the instance that pulls each tenant's lanes".into(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                num_replicas: settings.nats.replicas,
                ..Default::default()
            },
        )
        .await?;
        let created = owners.stream.cached_info().created;
        let generation = u64::try_from(created.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        Ok(Self {
            members,
            owners,
            me,
            lease,
            generation,
            parts: settings.ownership.partitions.max(1),
            deciding: Arc::default(),
        })
    }

    /// How many partitions each tenant's orders are spread over.
    pub fn parts(&self) -> u16 {
        self.parts
    }

    /// The unit `order` of `tenant` belongs to.
    pub fn unit_of(&self, tenant: &TenantId, order: OrderId) -> Unit {
        Unit::of(tenant, order, self.parts)
    }

    /// Notes whether this instance decides `unit`'s commands now (its
    /// lanes run).
    pub fn set_deciding(&self, unit: &Unit, deciding: bool) {
        let mut set = self.deciding.write().unwrap_or_else(|e| e.into_inner());
        if deciding {
            set.insert(unit.clone());
        } else if set.remove(unit) {
            // Its lanes' backlog is another instance's now.
            for lane in ["cmd", "job"] {
                telemetry::lane_backlog(&unit.to_string(), lane, 0);
            }
        }
        telemetry::tenants_owned(set.len());
    }

    /// Whether this instance decides `unit`'s commands now: when not, a
    /// live actor of one of its orders may be stale (another instance may
    /// have changed the order since), so reads go to the store.
    pub fn deciding(&self, unit: &Unit) -> bool {
        self.deciding
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(unit)
    }

    /// Whether this instance decides `order` of `tenant` now.
    pub fn decides(&self, tenant: &TenantId, order: OrderId) -> bool {
        self.deciding(&self.unit_of(tenant, order))
    }

    /// The tenants this instance decides now (some or all of their
    /// partitions), the `turn`th (modulo their number) first and the others
    /// after it in order: a sweep that counts its turns lets each tenant go
    /// first in turn, so one with a backlog does not hold the others back
    /// sweep after sweep.
    pub fn deciding_now(&self, turn: usize) -> Vec<Decided> {
        let set = self.deciding.read().unwrap_or_else(|e| e.into_inner());
        let mut tenants: Vec<Decided> = Vec::new();
        let mut units: Vec<&Unit> = set.iter().collect();
        units.sort();
        for unit in units {
            match tenants.last_mut() {
                Some(d) if d.tenant == unit.tenant => d.mine.push(unit.part),
                _ => tenants.push(Decided {
                    tenant: unit.tenant.clone(),
                    parts: self.parts,
                    mine: vec![unit.part],
                }),
            }
        }
        if !tenants.is_empty() {
            let first = turn % tenants.len();
            tenants.rotate_left(first);
        }
        tenants
    }

    /// This instance's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The owners bucket's generation (when it was created, ms).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Announces this instance as live for another lease; `value` is what
    /// operators read (name, start time).
    pub async fn heartbeat(&self, value: Bytes) -> Result<(), BusError> {
        self.members
            .put(&self.me, value)
            .await
            .map(|_| ())
            .map_err(|e| kv_err("members")(e.to_string()))
    }

    /// Leaves at once (shutdown), instead of expiring a lease later.
    pub async fn leave(&self) {
        if let Err(e) = self.members.purge(&self.me).await {
            tracing::debug!(error = %e, "cannot remove the member key");
        }
    }

    /// The live instances' ids, sorted.
    pub async fn members(&self) -> Result<Vec<String>, BusError> {
        let keys = self
            .members
            .keys()
            .await
            .map_err(|e| kv_err("members")(e.to_string()))?;
        let mut ids: Vec<String> = keys
            .try_collect()
            .await
            .map_err(|e| kv_err("members")(e.to_string()))?;
        ids.sort();
        Ok(ids)
    }

    /// A live instance's announcement (for operators).
    pub async fn member_info(&self, id: &str) -> Option<Bytes> {
        self.members.get(id).await.ok().flatten()
    }

    /// Who owns `unit` now, if anyone.
    pub async fn claim(&self, unit: &Unit) -> Result<Option<Claim>, BusError> {
        let entry = self
            .owners
            .entry(unit.to_string())
            .await
            .map_err(|e| kv_err("owners")(e.to_string()))?;
        Ok(entry.and_then(|e| match e.operation {
            kv::Operation::Put if !e.value.is_empty() => Some(Claim {
                owner: String::from_utf8_lossy(&e.value).into_owned(),
                revision: e.revision,
            }),
            _ => None,
        }))
    }

    /// Takes `unit`: from nobody (`previous` is `None`), or from the
    /// instance whose claim `previous` is (it must be gone). `Ok(None)`
    /// when another instance changed the key first.
    pub async fn take(
        &self,
        unit: &Unit,
        previous: Option<&Claim>,
    ) -> Result<Option<u64>, BusError> {
        let value = Bytes::from(self.me.clone());
        let key = unit.to_string();
        let result = match previous {
            None => self.owners.create(&key, value).await.map_err(|e| {
                (
                    e.kind() == kv::CreateErrorKind::AlreadyExists,
                    e.to_string(),
                )
            }),
            Some(claim) => self
                .owners
                .update(&key, value, claim.revision)
                .await
                .map_err(|e| {
                    (
                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        e.to_string(),
                    )
                }),
        };
        match result {
            Ok(revision) => Ok(Some(revision)),
            Err((true, _)) => Ok(None),
            Err((false, why)) => Err(kv_err("owners")(why)),
        }
    }

    /// Gives `unit` up (its lanes no longer pulled here): deletes the key
    /// if it still holds this instance's claim at `revision`.
    pub async fn release(&self, unit: &Unit, revision: u64) {
        if let Err(e) = self
            .owners
            .delete_expect_revision(unit.to_string(), Some(revision))
            .await
        {
            tracing::debug!(error = %e, unit = %unit, "release: the claim had changed");
        }
    }

    /// Every tenant's owner (for operators).
    pub async fn owners(&self) -> Result<Vec<(String, String)>, BusError> {
        let keys = self
            .owners
            .keys()
            .await
            .map_err(|e| kv_err("owners")(e.to_string()))?;
        let keys: Vec<String> = keys
            .try_collect()
            .await
            .map_err(|e| kv_err("owners")(e.to_string()))?;
        let mut out = Vec::new();
        for k in keys {
            if let Ok(Some(v)) = self.owners.get(&k).await {
                if !v.is_empty() {
                    out.push((k, String::from_utf8_lossy(&v).into_owned()));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

async fn bucket(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, BusError> {
    let name = config.bucket.clone();
    match js.get_key_value(&name).await {
        Ok(store) => Ok(store),
        Err(_) => js
            .create_key_value(config)
            .await
            .map_err(|e| kv_err("kv")(format!("bucket {name}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(n: usize) -> Vec<TenantId> {
        (0..n)
            .map(|i| TenantId::parse(&format!("t{i}")).unwrap())
            .collect()
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn shares_of_a_count_add_up_over_the_partitions() {
        let decided = |parts: u16, mine: Vec<u16>| Decided {
            tenant: tenants(1)[0].clone(),
            parts,
            mine,
        };
        assert_eq!(decided(1, vec![0]).share(7), 7);
        assert_eq!(decided(4, vec![0, 1, 2, 3]).share(7), 7);
        assert_eq!(decided(4, vec![2]).share(8), 2);
        let (a, b) = (decided(3, vec![0]), decided(3, vec![1, 2]));
        assert_eq!(a.share(9) + b.share(9), 9);
        assert_eq!(decided(8, vec![5]).share(0), 0);
    }

    #[test]
    fn every_instance_ranks_alike_whatever_the_order_of_members() {
        let a = ids(&["a", "b", "c"]);
        let b = ids(&["c", "a", "b"]);
        for t in tenants(200) {
            assert_eq!(owner_of(t.as_str(), &a), owner_of(t.as_str(), &b));
        }
        assert_eq!(owner_of(tenants(1)[0].as_str(), &[]), None);
    }

    #[test]
    fn tenants_spread_over_members_and_a_join_moves_only_its_share() {
        let all = tenants(3000);
        let three = ids(&["i-1", "i-2", "i-3"]);
        let mut count = std::collections::HashMap::<&str, usize>::new();
        for t in &all {
            *count
                .entry(owner_of(t.as_str(), &three).unwrap())
                .or_default() += 1;
        }
        for m in &three {
            let c = count[m.as_str()];
            assert!((850..=1150).contains(&c), "{m} owns {c} of 3000");
        }
        let four = ids(&["i-1", "i-2", "i-3", "i-4"]);
        let mut moved = 0;
        for t in &all {
            let before = owner_of(t.as_str(), &three).unwrap();
            let after = owner_of(t.as_str(), &four).unwrap();
            if before != after {
                assert_eq!(after, "i-4", "a join only takes tenants for itself");
                moved += 1;
            }
        }
        assert!((600..=900).contains(&moved), "a join moved {moved} of 3000");
    }

    #[test]
    fn a_tenants_partitions_spread_evenly_and_a_join_moves_about_its_share() {
        let tenant = TenantId::parse("acme").unwrap();
        let units: Vec<String> = Unit::all(&tenant, 16).map(|u| u.to_string()).collect();
        for n in 1..=7 {
            let members: Vec<String> = (0..n).map(|i| format!("i-{i}")).collect();
            let owners = assign(&units, &members);
            for m in &members {
                let c = owners.iter().filter(|o| **o == Some(m.as_str())).count();
                assert!(
                    c == 16 / n || c == 16usize.div_ceil(n),
                    "{m} owns {c} of 16 among {n}"
                );
            }
            // The order of members does not matter.
            let mut reversed = members.clone();
            reversed.reverse();
            assert_eq!(assign(&units, &reversed), owners);
        }
        // A join moves about its share (16 / (n + 1)), on average over
        // many memberships: a little more, as the bounded load cascades,
        // far from a reshuffle.
        for n in 2..=7_usize {
            let mut moved = 0;
            for set in 0..50 {
                let members: Vec<String> = (0..n).map(|i| format!("m{set}-{i}")).collect();
                let mut more = members.clone();
                more.push(format!("m{set}-new"));
                let (before, after) = (assign(&units, &members), assign(&units, &more));
                moved += before.iter().zip(&after).filter(|(a, b)| a != b).count();
            }
            let mean = moved as f64 / 50.0;
            let share = 16.0 / (n + 1) as f64;
            println!(
                "{n} -> {}: {mean} moved on average, share {share:.1}",
                n + 1
            );
            assert!(
                mean <= share * 1.6 + 1.0,
                "{n} -> {}: {mean} moved on average, share {share}",
                n + 1
            );
        }
        // One unit goes to one member; none without members.
        let one = vec!["acme".to_owned()];
        let members = ids(&["a", "b", "c"]);
        assert!(assign(&one, &members)[0].is_some_and(|m| members.iter().any(|x| x == m)));
        assert_eq!(assign(&one, &[]), vec![None]);
    }

    #[test]
    fn a_leave_moves_only_the_leavers_tenants() {
        let all = tenants(500);
        let three = ids(&["x", "y", "z"]);
        let two = ids(&["x", "z"]);
        for t in &all {
            let before = owner_of(t.as_str(), &three).unwrap();
            if before != "y" {
                assert_eq!(owner_of(t.as_str(), &two).unwrap(), before);
            }
        }
    }
}
