//! Resharding: SplitShard, MergeShards, UpdateShardCount (uniform scaling), and on-demand
//! streams that scale when throttled; parents close and keep their records.

use super::*;

impl Streams {
    /// ≙ SplitShard: closes `shard_id` and opens two children splitting its range at
    /// `at` (default: the middle).
    pub fn split(&self, name: &str, shard_id: &str, at: Option<u128>) -> Result<Vec<Shard>> {
        let mut state = self.lock();
        let parent = open_shard(&state, name, shard_id)?.clone();
        let (start, end) = parent.range();
        let at = at.unwrap_or(start + (end - start) / 2 + 1);
        if at <= start || at > end {
            return Err(service_err!(
                InvalidArgumentException,
                "NewStartingHashKey {at} is not inside {shard_id}'s range ({start}, {end}]"
            )
            .with_hint("it must be at least one more than the shard's StartingHashKey and at most its EndingHashKey"));
        }
        self.reshard(&mut state, name, &[shard_id], &[(start, at - 1), (at, end)])
    }

    /// ≙ MergeShards: closes two open shards with adjacent ranges and opens one child.
    pub fn merge(&self, name: &str, shard_id: &str, adjacent_id: &str) -> Result<Vec<Shard>> {
        let mut state = self.lock();
        let a = open_shard(&state, name, shard_id)?.range();
        let b = open_shard(&state, name, adjacent_id)?.range();
        let adjacent = a.1.checked_add(1) == Some(b.0) || b.1.checked_add(1) == Some(a.0);
        if !adjacent {
            return Err(service_err!(InvalidArgumentException, "shards {shard_id} and {adjacent_id} are not adjacent")
                .with_hint("two shards merge when one's EndingHashKey + 1 is the other's StartingHashKey"));
        }
        self.reshard(&mut state, name, &[shard_id, adjacent_id], &[(a.0.min(b.0), a.1.max(b.1))])
    }

    /// ≙ UpdateShardCount with UNIFORM_SCALING: the open shards are replaced by `target`
    /// shards splitting the hash space evenly; `target` is from half to double the count.
    pub fn scale(&self, name: &str, target: u64) -> Result<Vec<Shard>> {
        let mut state = self.lock();
        let description = stream(&state, name)?;
        let current = description.open_shards().count() as u64;
        if target < current.div_ceil(2) || target > current * 2 || target > MAX_SHARDS {
            return Err(service_err!(
                InvalidArgumentException,
                "TargetShardCount {target} is out of range for a stream with {current} open shard(s): {} to {}",
                current.div_ceil(2),
                (current * 2).min(MAX_SHARDS)
            )
            .with_hint("UpdateShardCount can at most double or halve the shard count in one call"));
        }
        if target == current && description.open_shards().map(|s| s.range()).eq(even_ranges(target)) {
            return Ok(Vec::new());
        }
        let parents: Vec<String> = description.open_shards().map(|s| s.shard_id.clone()).collect();
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        self.reshard(&mut state, name, &parents, &even_ranges(target))
    }

    /// Closes `parents` and opens a child per range; each child names the parent holding its
    /// first hash key and (when another parent overlaps it) that one as its adjacent parent.
    pub(super) fn reshard(&self, state: &mut State, name: &str, parents: &[&str], ranges: &[(u128, u128)]) -> Result<Vec<Shard>> {
        let mut description = stream(state, name)?.clone();
        let mut closed = Vec::new();
        for shard in description.shards.iter_mut().filter(|s| parents.contains(&s.shard_id.as_str())) {
            let log = &state.logs[&(name.to_string(), shard.shard_id.clone())];
            let last = log.next_sequence().saturating_sub(1).max(1);
            shard.ending_sequence_number = Some(sequence_string(shard.number(), last));
            closed.push(shard.clone());
        }
        let first_child = description.shards.len();
        for &(start, end) in ranges {
            let mut overlapping = closed.iter().filter(|p| {
                let (a, b) = p.range();
                a <= end && start <= b
            });
            let parent = closed.iter().find(|p| (p.range().0..=p.range().1).contains(&start)).map(|p| p.shard_id.clone());
            let adjacent = overlapping.find(|p| Some(&p.shard_id) != parent.as_ref()).map(|p| p.shard_id.clone());
            self.add_shard(state, &mut description, (start, end), (parent, adjacent))?;
        }
        let children = description.shards[first_child..].to_vec();
        state.streams.insert(name.to_string(), description);
        self.save(state)?;
        Ok(children)
    }

    /// On-demand capacity follows demand: an on-demand stream that throttled writes since
    /// the last check doubles its open shards (UpdateShardCount), up to
    /// [`ON_DEMAND_MAX_SHARDS`]. Kinesis scales within minutes; here it happens at the next
    /// due-work tick (each simulated second of the generator, or the background loop).
    pub fn autoscale(&self) -> Result<Vec<String>> {
        let mut state = self.lock();
        let on_demand: Vec<(String, u64)> = state
            .streams
            .values()
            .filter(|s| s.capacity == Capacity::OnDemand)
            .map(|s| (s.name.clone(), s.open_shards().count() as u64))
            .collect();
        let mut reports = Vec::new();
        for (name, open) in on_demand {
            if !state.meters.take_write_throttled(&name) || open >= ON_DEMAND_MAX_SHARDS {
                continue;
            }
            let target = (open * 2).min(ON_DEMAND_MAX_SHARDS);
            let parents: Vec<String> = stream(&state, &name)?.open_shards().map(|s| s.shard_id.clone()).collect();
            let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
            self.reshard(&mut state, &name, &parents, &even_ranges(target))?;
            reports.push(format!("on-demand stream {name} was throttled and scaled from {open} to {target} shards"));
        }
        Ok(reports)
    }
}
