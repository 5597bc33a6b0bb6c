"""Lifts the budgets of the demo catalog's RTB line items and their campaigns on a benchmark
server, through the management API: `python3 bench/unlimit_budgets.py BASE_URL ADMIN_KEY`.

Every bid reserves its price against the line item's and campaign's budgets until its notices
come; a bid benchmark sends no notices, so on the demo's budgets it would turn into cheap
no-bids after ~400k bids. Used by scripts/bench-http.sh, scripts/bench-ab.sh and scripts/bench-bid-latency.sh.
"""
import json, sys, urllib.request
base, key = sys.argv[1], sys.argv[2]
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
huge = 10**15
campaigns = set()
for li in ("demo-acme-ron", "demo-globex-preroll", "demo-globex-rtb-video", "demo-initech-native-rtb"):
    cur = call("GET", f"/api/v1/line-items/{li}")
    campaigns.add(cur["campaign_id"])
    budget = dict(cur.get("budget") or {})
    budget["daily_micros"] = huge
    if budget.get("lifetime_micros") is not None:
        budget["lifetime_micros"] = huge
    call("PATCH", f"/api/v1/line-items/{li}", {"version": cur["version"], "budget": budget})
for c in sorted(campaigns):
    cur = call("GET", f"/api/v1/campaigns/{c}")
    if cur.get("budget_micros") is not None:
        call("PATCH", f"/api/v1/campaigns/{c}", {"version": cur["version"], "budget_micros": huge})
