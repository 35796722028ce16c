"""Build watcher/data/words.txt.gz: the English word list of the flow model's word features.

    apt-get install wamerican && python scripts/build_wordlist.py

From Debian's wamerican (SCOWL, Kevin Atkinson; notice in watcher/data/LICENSE.scowl): lower-case
ASCII words of 3 to 12 letters (no possessives, no proper-noun capitals), plus the technical words
host names are made of (the original work's `ecampus` false positive is why they are here).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path("/usr/share/dict/american-english")
TECH = """
api app apps auth admin backend beta blob bucket cache cdn cert cloud cluster config console
data db dev dns docs ecampus edge email events feed files gateway git grpc health hooks host
http https id identity img images ingest internal intranet k8s kafka kube lb login logs mail
media metrics mirror mobile mx net node ns oauth objects ocsp ops origin pay payments pkg pod
portal prod proxy push queue redis registry repo rest s3 sandbox sdk search secure service
shop smtp sso stage static status storage stream svc sync telemetry tenant token track
tracking update updates upload user users vpn web webhook wiki ws www
""".split()  # noqa: SIM905 - a word list reads better as text


def main() -> None:
    words = {
        w for w in SOURCE.read_text(encoding="utf-8").split() if re.fullmatch(r"[a-z]{3,12}", w)
    }
    words |= set(TECH)
    out = ROOT / "watcher" / "data" / "words.txt.gz"
    out.write_bytes(gzip.compress(("\n".join(sorted(words)) + "\n").encode(), mtime=0))
    print(f"{len(words)} words -> {out}")


if __name__ == "__main__":
    main()
