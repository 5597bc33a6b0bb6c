//! index: a compiled inverted index over the conjunctions of every line item's targeting
//! expression (after Whang et al., "Indexing Boolean Expressions", VLDB 2009). Each expression
//! is rewritten into disjunctive normal form. Each conjunction is filed in the posting lists
//! of one *pivot* predicate — its positive set predicate whose values are rarest across the
//! catalog — and a request walks only the pivot lists of the values it carries; each
//! conjunction found there is then verified against the request's interned attribute values
//! (the other positive predicates must hit, the negative ones must miss). So a broad predicate
//! (device type, say) never costs a walk over every line item that uses it. Conjunctions with
//! no positive set predicate are verified on every request. Predicates without discrete values
//! (daypart, IP ranges) are checked last; expressions whose DNF is too large are evaluated
//! directly (`scan`), so the index is exact. Built off the hot path; immutable once built.

use crate::eval::{device_key, eval};
use crate::request::MatchInput;
use adp_domain::Expr;
use chrono::{Datelike, Timelike};
use rustc_hash::FxHashMap;

/// Largest DNF (number of conjunctions) indexed per expression; larger ones are scanned.
pub const MAX_CONJUNCTIONS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Attr {
    Country,
    Region,
    City,
    Metro,
    DeviceType,
    Os,
    Browser,
    Domain,
    AppBundle,
    Placement,
    Size,
    Language,
    Segment,
    Deal,
    /// Key-values: the value id names a (key, value) pair.
    KeyValue,
}
const N_ATTRS: usize = 15;

/// One set predicate of a conjunction, over interned value ids (sorted).
#[derive(Clone, Debug)]
struct SetLit {
    attr: Attr,
    values: Box<[u32]>,
}

#[derive(Clone, Debug)]
enum Residual {
    /// Time zone, and per weekday (Mon = 0) a 24-bit mask of the hours included.
    Daypart(chrono_tz::Tz, [u32; 7]),
    Ip(Vec<ipnet::IpNet>),
}

#[derive(Clone, Debug)]
struct Conj {
    item: u32,
    /// Position of the pivot in `positive` (skipped when verifying), if any.
    pivot: Option<usize>,
    positive: Vec<SetLit>,
    negative: Vec<SetLit>,
    residual: Vec<(Residual, bool)>,
}

/// A literal of the DNF: a leaf predicate, possibly negated.
#[derive(Clone, Copy)]
struct Lit<'e> {
    leaf: &'e Expr,
    neg: bool,
}

/// Rewrites `expr` (negated when `neg`) into DNF; `None` when it would exceed the limit.
fn dnf<'e>(expr: &'e Expr, neg: bool) -> Option<Vec<Vec<Lit<'e>>>> {
    let conjunctive = matches!((expr, neg), (Expr::All(_), false) | (Expr::Any(_), true));
    match expr {
        Expr::Not(e) => dnf(e, !neg),
        Expr::All(children) | Expr::Any(children) if conjunctive => {
            let mut acc: Vec<Vec<Lit<'e>>> = vec![vec![]];
            for c in children {
                let sub = dnf(c, neg)?;
                if acc.len().saturating_mul(sub.len()) > MAX_CONJUNCTIONS {
                    return None;
                }
                let mut next = Vec::with_capacity(acc.len() * sub.len());
                for a in &acc {
                    for s in &sub {
                        let mut conj = a.clone();
                        conj.extend_from_slice(s);
                        next.push(conj);
                    }
                }
                acc = next;
            }
            Some(acc)
        }
        Expr::All(children) | Expr::Any(children) => {
            let mut acc = Vec::new();
            for c in children {
                acc.extend(dnf(c, neg)?);
                if acc.len() > MAX_CONJUNCTIONS {
                    return None;
                }
            }
            Some(acc)
        }
        leaf => Some(vec![vec![Lit { leaf, neg }]]),
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The attribute and the values a leaf set predicate is true for (key-values as `key\u{1f}value`).
fn discrete(leaf: &Expr) -> Option<(Attr, Vec<String>)> {
    let own = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
    let d = match leaf {
        Expr::Country(v) => (Attr::Country, own(strs(v))),
        Expr::Region(v) => (Attr::Region, own(strs(v))),
        Expr::City(v) => (Attr::City, own(strs(v))),
        Expr::Metro(v) => (Attr::Metro, own(strs(v))),
        Expr::DeviceType(v) => (Attr::DeviceType, v.iter().map(|d| device_key(*d).to_string()).collect()),
        Expr::Os(v) => (Attr::Os, own(strs(v))),
        Expr::Browser(v) => (Attr::Browser, own(strs(v))),
        Expr::Domain(v) => (Attr::Domain, own(strs(v))),
        Expr::AppBundle(v) => (Attr::AppBundle, own(strs(v))),
        Expr::Placement(v) => (Attr::Placement, own(strs(v))),
        Expr::Size(v) => (Attr::Size, own(strs(v))),
        Expr::Language(v) => (Attr::Language, own(strs(v))),
        Expr::Segment(v) => (Attr::Segment, own(strs(v))),
        Expr::Deal(v) => (Attr::Deal, own(strs(v))),
        Expr::KeyValue(kv) => (Attr::KeyValue, kv.values.iter().map(|v| kv_key(&kv.key, v)).collect()),
        _ => return None,
    };
    Some(d)
}

fn kv_key(k: &str, v: &str) -> String {
    format!("{k}\u{1f}{v}")
}

fn weekday_index(w: adp_domain::targeting::Weekday) -> usize {
    use adp_domain::targeting::Weekday::*;
    match w {
        Mon => 0,
        Tue => 1,
        Wed => 2,
        Thu => 3,
        Fri => 4,
        Sat => 5,
        Sun => 6,
    }
}

fn residual(leaf: &Expr) -> Option<Residual> {
    match leaf {
        Expr::Daypart(dp) => {
            // An unknown zone (validation forbids it) matches nothing, as in `eval`.
            let Ok(tz) = dp.time_zone.parse::<chrono_tz::Tz>() else {
                return Some(Residual::Daypart(chrono_tz::UTC, [0; 7]));
            };
            let mut hours = [0u32; 7];
            for w in &dp.windows {
                let mask = (w.start_hour..w.end_hour.min(24)).fold(0u32, |m, h| m | (1 << h));
                for d in &w.days {
                    hours[weekday_index(*d)] |= mask;
                }
            }
            Some(Residual::Daypart(tz, hours))
        }
        Expr::IpCidr(nets) => Some(Residual::Ip(nets.iter().filter_map(|n| n.parse().ok()).collect())),
        _ => None,
    }
}

/// Per-thread scratch space for matching; reuse it across requests.
#[derive(Default)]
pub struct Scratch {
    generation: u32,
    conj_stamp: Vec<u32>,
    item_stamp: Vec<u32>,
    /// The request's interned values per attribute.
    values: Vec<Vec<u32>>,
    /// Local (weekday, hour) per time zone seen in this request.
    local_time: Vec<(chrono_tz::Tz, usize, u32)>,
}

impl Scratch {
    fn begin(&mut self, conjs: usize, items: usize) {
        if self.conj_stamp.len() < conjs {
            self.conj_stamp.resize(conjs, 0);
        }
        if self.item_stamp.len() < items {
            self.item_stamp.resize(items, 0);
        }
        if self.values.len() < N_ATTRS {
            self.values.resize_with(N_ATTRS, Vec::new);
        }
        self.values.iter_mut().for_each(Vec::clear);
        self.local_time.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.conj_stamp.iter_mut().for_each(|s| *s = 0);
            self.item_stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
    }
}

#[derive(Default, Debug)]
pub struct TargetingIndex {
    /// Interned values per attribute.
    dictionary: Vec<FxHashMap<Box<str>, u32>>,
    /// Pivot postings: attribute → value id → conjunctions filed under it.
    pivots: Vec<FxHashMap<u32, Vec<u32>>>,
    conjs: Vec<Conj>,
    /// Conjunctions without a positive set predicate: verified on every request.
    unpivoted: Vec<u32>,
    /// Items whose expressions are evaluated directly.
    scan: Vec<(u32, Expr)>,
    items: usize,
    /// Per item: its conjunctions `start..end` in `conjs`, or `SCANNED` with its index in `scan`.
    item_conjs: Vec<(u32, u32)>,
}

const SCANNED: u32 = u32::MAX;

/// Sizes of a built index, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    pub items: usize,
    pub conjunctions: usize,
    pub postings: usize,
    pub always_candidates: usize,
    pub scanned: usize,
}

impl TargetingIndex {
    /// Builds the index over `(item, targeting)`; `None` targeting matches every request.
    /// Item numbers must be below `item_count`.
    pub fn build<'a>(item_count: usize, items: impl IntoIterator<Item = (u32, Option<&'a Expr>)>) -> TargetingIndex {
        let mut ix = TargetingIndex {
            dictionary: (0..N_ATTRS).map(|_| FxHashMap::default()).collect(),
            pivots: (0..N_ATTRS).map(|_| FxHashMap::default()).collect(),
            items: item_count,
            item_conjs: vec![(0, 0); item_count],
            ..Default::default()
        };
        for (item, expr) in items {
            let start = ix.conjs.len() as u32;
            match expr.map(|e| (e, dnf(e, false))) {
                None => ix.add_conj(item, &[]),
                Some((_, Some(conjs))) => conjs.iter().for_each(|c| ix.add_conj(item, c)),
                Some((e, None)) => {
                    if let Some(slot) = ix.item_conjs.get_mut(item as usize) {
                        *slot = (SCANNED, ix.scan.len() as u32);
                    }
                    ix.scan.push((item, e.clone()));
                    continue;
                }
            }
            if let Some(slot) = ix.item_conjs.get_mut(item as usize) {
                *slot = (start, ix.conjs.len() as u32);
            }
        }
        ix.choose_pivots();
        ix
    }

    fn intern(&mut self, attr: Attr, value: &str) -> u32 {
        let dict = &mut self.dictionary[attr as usize];
        let next = dict.len() as u32;
        *dict.entry(value.into()).or_insert(next)
    }

    fn add_conj(&mut self, item: u32, lits: &[Lit<'_>]) {
        let mut conj = Conj { item, pivot: None, positive: Vec::new(), negative: Vec::new(), residual: Vec::new() };
        for lit in lits {
            if let Some((attr, values)) = discrete(lit.leaf) {
                let mut ids: Vec<u32> = values.iter().map(|v| self.intern(attr, v)).collect();
                ids.sort_unstable();
                ids.dedup();
                let set = SetLit { attr, values: ids.into_boxed_slice() };
                if lit.neg {
                    conj.negative.push(set);
                } else {
                    conj.positive.push(set);
                }
            } else if let Some(r) = residual(lit.leaf) {
                conj.residual.push((r, lit.neg));
            }
        }
        self.conjs.push(conj);
    }

    /// Files each conjunction under its rarest positive predicate.
    fn choose_pivots(&mut self) {
        let mut freq: Vec<FxHashMap<u32, u32>> = (0..N_ATTRS).map(|_| FxHashMap::default()).collect();
        for c in &self.conjs {
            for lit in &c.positive {
                for v in lit.values.iter() {
                    *freq[lit.attr as usize].entry(*v).or_default() += 1;
                }
            }
        }
        for (id, c) in self.conjs.iter_mut().enumerate() {
            let cost = |lit: &SetLit| {
                lit.values.iter().map(|v| freq[lit.attr as usize].get(v).copied().unwrap_or(0) as u64).sum::<u64>()
            };
            c.pivot = (0..c.positive.len()).min_by_key(|&i| cost(&c.positive[i]));
            match c.pivot {
                Some(p) => {
                    let lit = &c.positive[p];
                    for v in lit.values.iter() {
                        self.pivots[lit.attr as usize].entry(*v).or_default().push(id as u32);
                    }
                }
                None => self.unpivoted.push(id as u32),
            }
        }
    }

    pub fn stats(&self) -> IndexStats {
        IndexStats {
            items: self.items,
            conjunctions: self.conjs.len(),
            postings: self.pivots.iter().flat_map(|m| m.values()).map(Vec::len).sum(),
            always_candidates: self.unpivoted.len(),
            scanned: self.scan.len(),
        }
    }

    fn push_value(&self, attr: Attr, value: &str, s: &mut Scratch) {
        if let Some(id) = self.dictionary[attr as usize].get(value) {
            s.values[attr as usize].push(*id);
        }
    }

    /// Appends to `out` every item whose expression is true for `input`, each once.
    pub fn matches(&self, input: &MatchInput<'_>, s: &mut Scratch, out: &mut Vec<u32>) {
        self.prepare(input, s);
        for attr in 0..N_ATTRS {
            for vi in 0..s.values[attr].len() {
                let v = s.values[attr][vi];
                let Some(list) = self.pivots[attr].get(&v) else { continue };
                for &c in list {
                    if s.conj_stamp[c as usize] != s.generation {
                        s.conj_stamp[c as usize] = s.generation;
                        self.verify(c, input, s, out);
                    }
                }
            }
        }
        for &c in &self.unpivoted {
            self.verify(c, input, s, out);
        }
        for (item, expr) in &self.scan {
            if s.item_stamp[*item as usize] != s.generation && eval(expr, input) {
                s.item_stamp[*item as usize] = s.generation;
                out.push(*item);
            }
        }
    }

    /// Interns the request's values into `s`; `item_matches` needs it first.
    pub fn prepare(&self, input: &MatchInput<'_>, s: &mut Scratch) {
        s.begin(self.conjs.len(), self.items);
        let a = input.attrs;
        let singles = [
            (Attr::Country, a.country.as_deref()),
            (Attr::Region, a.region.as_deref()),
            (Attr::City, a.city.as_deref()),
            (Attr::Metro, a.metro.as_deref()),
            (Attr::DeviceType, a.device_type.map(device_key)),
            (Attr::Os, a.os.as_deref()),
            (Attr::Browser, a.browser.as_deref()),
            (Attr::Domain, a.domain.as_deref()),
            (Attr::AppBundle, a.app_bundle.as_deref()),
            (Attr::Language, a.language.as_deref()),
            (Attr::Placement, Some(input.slot.placement_id.as_str())),
        ];
        for (attr, value) in singles {
            if let Some(v) = value {
                self.push_value(attr, v, s);
            }
        }
        for v in input.slot.sizes.iter() {
            self.push_value(Attr::Size, v, s);
        }
        for v in &a.segments {
            self.push_value(Attr::Segment, v, s);
        }
        for v in &a.deals {
            self.push_value(Attr::Deal, v, s);
        }
        if !self.dictionary[Attr::KeyValue as usize].is_empty() {
            for (k, v) in &a.key_values {
                self.push_value(Attr::KeyValue, &kv_key(k, v), s);
            }
        }
    }

    /// Whether `item`'s expression is true for the request last given to `prepare`.
    pub fn item_matches(&self, item: u32, input: &MatchInput<'_>, s: &mut Scratch) -> bool {
        let Some(&(start, end)) = self.item_conjs.get(item as usize) else { return false };
        if start == SCANNED {
            return self.scan.get(end as usize).is_some_and(|(_, e)| eval(e, input));
        }
        (start..end).any(|c| self.conj_holds(&self.conjs[c as usize], None, input, s))
    }

    /// Whether `item` can match at all in a slot with this placement id and these sizes
    /// (a static filter: placement and size predicates only).
    pub fn could_match_slot(&self, item: u32, placement_id: &str, sizes: &[String]) -> bool {
        let Some(&(start, end)) = self.item_conjs.get(item as usize) else { return false };
        if start == SCANNED {
            return true;
        }
        let ids = |attr: Attr, values: &mut dyn Iterator<Item = &str>| -> Vec<u32> {
            values.filter_map(|v| self.dictionary[attr as usize].get(v).copied()).collect()
        };
        let placement = ids(Attr::Placement, &mut std::iter::once(placement_id));
        let size = ids(Attr::Size, &mut sizes.iter().map(String::as_str));
        let holds = |lit: &SetLit, have: &[u32]| have.iter().any(|v| lit.values.binary_search(v).is_ok());
        (start..end).any(|c| {
            let conj = &self.conjs[c as usize];
            let check = |lit: &SetLit| match lit.attr {
                Attr::Placement => Some(holds(lit, &placement)),
                Attr::Size => Some(holds(lit, &size)),
                _ => None,
            };
            conj.positive.iter().all(|l| check(l).unwrap_or(true))
                && conj.negative.iter().all(|l| !check(l).unwrap_or(false))
        })
    }

    fn verify(&self, c: u32, input: &MatchInput<'_>, s: &mut Scratch, out: &mut Vec<u32>) {
        let conj = &self.conjs[c as usize];
        let item = conj.item as usize;
        if s.item_stamp[item] == s.generation {
            return;
        }
        if self.conj_holds(conj, conj.pivot, input, s) {
            s.item_stamp[item] = s.generation;
            out.push(conj.item);
        }
    }

    /// Whether a conjunction holds for the prepared request; `skip` is a positive predicate
    /// already known to hold (the pivot it was found by).
    #[inline]
    fn conj_holds(&self, conj: &Conj, skip: Option<usize>, input: &MatchInput<'_>, s: &mut Scratch) -> bool {
        let hits = |lit: &SetLit| s.values[lit.attr as usize].iter().any(|v| lit.values.binary_search(v).is_ok());
        for (i, lit) in conj.positive.iter().enumerate() {
            if Some(i) != skip && !hits(lit) {
                return false;
            }
        }
        if conj.negative.iter().any(hits) {
            return false;
        }
        for (r, neg) in &conj.residual {
            let hit = match r {
                Residual::Daypart(tz, hours) => {
                    let (day, hour) = local_time(s, *tz, input);
                    hours[day] & (1 << hour) != 0
                }
                Residual::Ip(nets) => input.attrs.ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            };
            if hit == *neg {
                return false;
            }
        }
        true
    }
}

/// The request's local weekday (Mon = 0) and hour in `tz`, computed once per zone per request.
fn local_time(s: &mut Scratch, tz: chrono_tz::Tz, input: &MatchInput<'_>) -> (usize, u32) {
    if let Some((_, d, h)) = s.local_time.iter().find(|(z, _, _)| *z == tz) {
        return (*d, *h);
    }
    let local = input.now.with_timezone(&tz);
    let (d, h) = (local.weekday().num_days_from_monday() as usize, local.hour());
    s.local_time.push((tz, d, h));
    (d, h)
}
