//! adp-dragonfly: the distributed mode's shared counters on DragonflyDB, spoken to over the Redis
//! protocol. Network I/O only; no decisions are made here (the engine decides, against in-memory
//! copies where it must stay synchronous).
//!
//! Components, each built from one [`Dragonfly`] handle:
//!
//! - [`FrequencyCaps`]: per-user frequency caps, one round trip to read before a decision and one
//!   to commit after it, exact across processes ([`caps`] module docs);
//! - [`BudgetLedger`]: line items' shared spend and per-process budget leases (below);
//! - [`ReplayGuard`]: one-shot keys (tracking URLs counted once);
//! - [`CtrStats`]: per-creative impressions and clicks for ranking.
//!
//! # Keys
//!
//! Every key starts with the configured prefix (default `adp`, no braces or spaces). The part in
//! braces is the hash tag: the keys one script touches share it and so one slot.
//!
//! | key | type | fields |
//! | --- | --- | --- |
//! | `{prefix}:fc:{<user key, 16 hex>}` | hash | `<entity hex>:<window code>:<bucket>` → count |
//! | `{prefix}:bud:{<line item id>}:<day>` | hash | `spent`, `leased`, `p:<minute>`, `g:<proc>`, `t:<proc>` |
//! | `{prefix}:bud:{<line item id>}:life` | hash | the same, over the line item's life |
//! | `{prefix}:rg:<key>` | string | `1`, with the guard's TTL |
//! | `{prefix}:ctr:{<creative id>}` | hash | `i` impressions, `c` clicks |
//!
//! Dragonfly runs scripts in Lua 5.4 and only lets a script touch the keys it declares: every
//! script here (src/lua/) reaches keys only as `KEYS[i]`, never builds a key name, never scans.
//! The scripts also run on Redis' Lua 5.1 (the test server): integer arithmetic only, numbers
//! passed back to the server formatted with `%d`.
//!
//! # Budget ledger
//!
//! A line item's budget is shared by every serving process. Each process holds a **lease**: a
//! grant of at most `slice` micros it may reserve from without asking, and a deadline. Per
//! budget day, in `{prefix}:bud:{<id>}:<day>` (the day number in the line item's time zone, the
//! caller's to compute), and likewise over the line item's life in `…:life`:
//!
//! - `spent`: micros booked by impression, click and billing notices;
//! - `p:<minute>`: **pending**: micros reserved by decisions taken in that Unix minute and
//!   reported by their process, not yet booked;
//! - `g:<proc>`: a process's outstanding grant, `t:<proc>` its lease deadline (Unix ms);
//!   `leased` is the sum of the grants.
//!
//! [`BudgetLedger::renew`], one script per line item (pipelined over line items by
//! [`BudgetLedger::renew_many`]), on both hashes: (a) reclaims the leases of other processes
//! whose deadline passed; (b) moves what this process reserved since its last renew (`used`, per
//! decision minute) out of its grant into pending; (c) drops pending minutes older than the
//! pending window; (d) tops the grant up to `min(slice, grant + budget − spent − pending −
//! leased)` for each budget that is set (the smaller when both are), shrinking it when the
//! ledger is over-committed (e.g. after a budget cut), and extends the deadline; (e) returns the
//! grant and the spent and live pending of the day and the life. After a renew, `spent +
//! pending + leased ≤ budget` on every hash with a budget, unless the hash was over-committed
//! already (a stalled process reporting after its lease was reclaimed, a budget cut, bookings
//! past the pending window): then the renewing process's grant shrinks, down to 0.
//! A line item with no budget at all is not leased: the reply says `i64::MAX`.
//!
//! [`BudgetLedger::book`] (and [`BudgetLedger::book_many`]) adds a notice's micros to `spent` and
//! takes the reservation it ends off `p:<decision minute>` on both hashes. That field may dip
//! below 0 when the notice beats the deciding process's report of the reservation: the money is
//! then still in that process's grant (`leased`), so `spent + pending + leased` stays exact, and
//! the report brings the field back to 0.
//! [`BudgetLedger::release`] reports the last `used` and gives the rest of the grant back at once
//! (call it on shutdown).
//!
//! ## Overspend bound
//!
//! A process reserves only from its grant (never more, whether or not renews succeed). While every
//! process renews within its lease TTL, total spend stays within the budget. A process that dies
//! (or stalls past its lease TTL) may have reserved up to `slice` micros it never reported; once
//! its lease expires that money is reclaimed and may be granted again while impressions of its
//! decisions still arrive and book.
//! So with `P` processes, each losing its lease at most once in a budget period,
//!
//! **spend ≤ budget + P × slice**,
//!
//! plus what notices book after their decision minute's pending was dropped (after
//! `pending_window_minutes`): keep tracking URLs' lifetime within the pending window, and reserve
//! the most a decision can book (e.g. a click's price for CPC). The lifetime budget has the same
//! bound.
//!
//! The other way, reservations of decisions whose ads are never shown stay pending until their
//! minute leaves the pending window: that much budget is held back for that long.

pub mod budget;
pub mod caps;
mod client;
pub mod ctr;
mod error;
mod keys;
pub mod replay;

pub use budget::{Booking, BudgetLedger, LeaseRequest, LeaseState};
pub use caps::{CapCounts, CapSnapshot, FrequencyCaps};
pub use client::{ConnectOptions, Dragonfly};
pub use ctr::CtrStats;
pub use error::Error;
pub use replay::ReplayGuard;
