//! index: a compiled inverted index over the conjunctions of every line item's targeting
//! expression (the counting variant of Whang et al., "Indexing Boolean Expressions", VLDB
//! 2009). Each expression is rewritten into disjunctive normal form; each conjunction's
//! positive set predicates become posting-list entries that set one bit of the conjunction's
//! mask, its negative ones entries that veto it. A request touches only the posting lists of
//! the values it carries, so matching costs what the request hits, not the catalog size.
//! Predicates that have no discrete value (daypart, IP ranges) are checked on the survivors;
//! expressions whose DNF is too large are evaluated directly (`scan`), so the index is exact.
//! Built off the hot path; immutable once built.

use crate::eval::{daypart_matches, device_key, eval};
use crate::request::MatchInput;
use adp_domain::targeting::Daypart;
use adp_domain::Expr;
use rustc_hash::FxHashMap;

/// Largest DNF (number of conjunctions) indexed per expression; larger ones are scanned.
pub const MAX_CONJUNCTIONS: usize = 64;
/// Positive predicates per conjunction that fit the mask (bit 63 marks a veto).
const MAX_POSITIVE: usize = 63;
const VETO: u64 = 1 << 63;

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
}
const N_ATTRS: usize = 14;

#[derive(Clone, Copy, Debug)]
struct Posting {
    conj: u32,
    /// Bit to set for a positive predicate, or `VETO`.
    bit: u64,
}

#[derive(Clone, Debug)]
enum Residual {
    Daypart(Daypart),
    Ip(Vec<ipnet::IpNet>),
}

#[derive(Clone, Debug)]
struct Conj {
    item: u32,
    full_mask: u64,
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

/// The discrete values a leaf predicate is true for, by attribute.
enum Discrete<'e> {
    Attr(Attr, Vec<&'e str>),
    KeyValue(&'e str, Vec<&'e str>),
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn discrete(leaf: &Expr) -> Option<Discrete<'_>> {
    let d = match leaf {
        Expr::Country(v) => Discrete::Attr(Attr::Country, strs(v)),
        Expr::Region(v) => Discrete::Attr(Attr::Region, strs(v)),
        Expr::City(v) => Discrete::Attr(Attr::City, strs(v)),
        Expr::Metro(v) => Discrete::Attr(Attr::Metro, strs(v)),
        Expr::DeviceType(v) => Discrete::Attr(Attr::DeviceType, v.iter().map(|d| device_key(*d)).collect()),
        Expr::Os(v) => Discrete::Attr(Attr::Os, strs(v)),
        Expr::Browser(v) => Discrete::Attr(Attr::Browser, strs(v)),
        Expr::Domain(v) => Discrete::Attr(Attr::Domain, strs(v)),
        Expr::AppBundle(v) => Discrete::Attr(Attr::AppBundle, strs(v)),
        Expr::Placement(v) => Discrete::Attr(Attr::Placement, strs(v)),
        Expr::Size(v) => Discrete::Attr(Attr::Size, strs(v)),
        Expr::Language(v) => Discrete::Attr(Attr::Language, strs(v)),
        Expr::Segment(v) => Discrete::Attr(Attr::Segment, strs(v)),
        Expr::Deal(v) => Discrete::Attr(Attr::Deal, strs(v)),
        Expr::KeyValue(kv) => Discrete::KeyValue(&kv.key, strs(&kv.values)),
        _ => return None,
    };
    Some(d)
}

fn residual(leaf: &Expr) -> Option<Residual> {
    match leaf {
        Expr::Daypart(dp) => Some(Residual::Daypart(dp.clone())),
        Expr::IpCidr(nets) => Some(Residual::Ip(nets.iter().filter_map(|n| n.parse().ok()).collect())),
        _ => None,
    }
}

/// Per-thread scratch space for matching; reuse it across requests.
#[derive(Default)]
pub struct Scratch {
    generation: u32,
    conj_stamp: Vec<u32>,
    conj_mask: Vec<u64>,
    touched: Vec<u32>,
    item_stamp: Vec<u32>,
}

impl Scratch {
    fn begin(&mut self, conjs: usize, items: usize) {
        if self.conj_stamp.len() < conjs {
            self.conj_stamp.resize(conjs, 0);
            self.conj_mask.resize(conjs, 0);
        }
        if self.item_stamp.len() < items {
            self.item_stamp.resize(items, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.conj_stamp.iter_mut().for_each(|s| *s = 0);
            self.item_stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        self.touched.clear();
    }
}

#[derive(Default, Debug)]
pub struct TargetingIndex {
    postings: Vec<FxHashMap<Box<str>, Vec<Posting>>>,
    kv_postings: FxHashMap<Box<str>, FxHashMap<Box<str>, Vec<Posting>>>,
    conjs: Vec<Conj>,
    /// Conjunctions without positive discrete predicates: candidates on every request.
    zero: Vec<u32>,
    /// Items whose expressions are evaluated directly.
    scan: Vec<(u32, Expr)>,
    items: usize,
}

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
            postings: (0..N_ATTRS).map(|_| FxHashMap::default()).collect(),
            items: item_count,
            ..Default::default()
        };
        for (item, expr) in items {
            let Some(expr) = expr else {
                ix.add_conj(item, &[]);
                continue;
            };
            let fits = dnf(expr, false).filter(|conjs| {
                conjs.iter().all(|c| c.iter().filter(|l| !l.neg && discrete(l.leaf).is_some()).count() <= MAX_POSITIVE)
            });
            match fits {
                Some(conjs) => conjs.iter().for_each(|c| ix.add_conj(item, c)),
                None => ix.scan.push((item, expr.clone())),
            }
        }
        ix
    }

    fn add_conj(&mut self, item: u32, lits: &[Lit<'_>]) {
        let id = self.conjs.len() as u32;
        let mut conj = Conj { item, full_mask: 0, residual: Vec::new() };
        let mut bit = 0u32;
        for lit in lits {
            match discrete(lit.leaf) {
                Some(d) => {
                    let posting = if lit.neg {
                        Posting { conj: id, bit: VETO }
                    } else {
                        let b = 1u64 << bit;
                        bit += 1;
                        conj.full_mask |= b;
                        Posting { conj: id, bit: b }
                    };
                    match d {
                        Discrete::Attr(attr, values) => {
                            for v in values {
                                self.postings[attr as usize].entry(v.into()).or_default().push(posting);
                            }
                        }
                        Discrete::KeyValue(key, values) => {
                            let by_value = self.kv_postings.entry(key.into()).or_default();
                            for v in values {
                                by_value.entry(v.into()).or_default().push(posting);
                            }
                        }
                    }
                }
                None => {
                    if let Some(r) = residual(lit.leaf) {
                        conj.residual.push((r, lit.neg));
                    }
                }
            }
        }
        if conj.full_mask == 0 {
            self.zero.push(id);
        }
        self.conjs.push(conj);
    }

    pub fn stats(&self) -> IndexStats {
        let postings = self.postings.iter().flat_map(|m| m.values()).map(Vec::len).sum::<usize>()
            + self.kv_postings.values().flat_map(|m| m.values()).map(Vec::len).sum::<usize>();
        IndexStats {
            items: self.items,
            conjunctions: self.conjs.len(),
            postings,
            always_candidates: self.zero.len(),
            scanned: self.scan.len(),
        }
    }

    #[inline]
    fn apply(&self, list: Option<&Vec<Posting>>, s: &mut Scratch) {
        let Some(list) = list else { return };
        let generation = s.generation;
        for p in list {
            let c = p.conj as usize;
            if s.conj_stamp[c] != generation {
                s.conj_stamp[c] = generation;
                s.conj_mask[c] = 0;
                s.touched.push(p.conj);
            }
            s.conj_mask[c] |= p.bit;
        }
    }

    fn lookup(&self, attr: Attr, value: &str, s: &mut Scratch) {
        self.apply(self.postings[attr as usize].get(value), s);
    }

    /// Appends to `out` every item whose expression is true for `input`, each once.
    pub fn matches(&self, input: &MatchInput<'_>, s: &mut Scratch, out: &mut Vec<u32>) {
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
                self.lookup(attr, v, s);
            }
        }
        for v in &input.slot.sizes {
            self.lookup(Attr::Size, v, s);
        }
        for v in &a.segments {
            self.lookup(Attr::Segment, v, s);
        }
        for v in &a.deals {
            self.lookup(Attr::Deal, v, s);
        }
        if !self.kv_postings.is_empty() {
            for (k, v) in &a.key_values {
                if let Some(by_value) = self.kv_postings.get(k.as_str()) {
                    self.apply(by_value.get(v.as_str()), s);
                }
            }
        }
        let generation = s.generation;
        for i in 0..s.touched.len() {
            let c = s.touched[i] as usize;
            let conj = &self.conjs[c];
            if conj.full_mask != 0 && s.conj_mask[c] == conj.full_mask {
                self.emit(conj, input, s, out);
            }
        }
        for &c in &self.zero {
            let c = c as usize;
            if s.conj_stamp[c] != generation || s.conj_mask[c] & VETO == 0 {
                self.emit(&self.conjs[c], input, s, out);
            }
        }
        for (item, expr) in &self.scan {
            if s.item_stamp[*item as usize] != generation && eval(expr, input) {
                s.item_stamp[*item as usize] = generation;
                out.push(*item);
            }
        }
    }

    #[inline]
    fn emit(&self, conj: &Conj, input: &MatchInput<'_>, s: &mut Scratch, out: &mut Vec<u32>) {
        let item = conj.item as usize;
        if s.item_stamp[item] == s.generation {
            return;
        }
        let residual_ok = conj.residual.iter().all(|(r, neg)| {
            let hit = match r {
                Residual::Daypart(dp) => daypart_matches(dp, input),
                Residual::Ip(nets) => input.attrs.ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            };
            hit != *neg
        });
        if residual_ok {
            s.item_stamp[item] = s.generation;
            out.push(conj.item);
        }
    }
}
