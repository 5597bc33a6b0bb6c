"""Puts a report into BENCHMARKS.md between the markers of the script that made it, replacing
what was there, or appends it under a new heading the first time.

usage: python3 bench/replace_section.py MARKER "HEADING" REPORT_FILE
  MARKER   e.g. bench.sh: the section lies between <!-- MARKER:begin --> and <!-- MARKER:end -->
"""

import re
import sys


def main():
    marker, heading, report_path = sys.argv[1:4]
    report = open(report_path).read()
    path = "BENCHMARKS.md"
    text = open(path).read()
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{report.rstrip()}\n{end}"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    open(path, "w").write(text)


if __name__ == "__main__":
    main()
