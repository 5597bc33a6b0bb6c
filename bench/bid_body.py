"""Writes the wrk bid request body: an OpenRTB sample, compact, with the placeholders __ID__
(request id) and __UID__ (user id) that bench/wrk/bid.lua replaces per request.

`python3 bench/bid_body.py SAMPLE.json OUT.json`; used by scripts/bench-http.sh and
scripts/bench-ab.sh.
"""
import json
import sys

req = json.load(open(sys.argv[1]))
req["id"] = "__ID__"
req.setdefault("user", {})["id"] = "__UID__"
open(sys.argv[2], "w").write(json.dumps(req, separators=(",", ":")))
