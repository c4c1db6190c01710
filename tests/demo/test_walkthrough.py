"""``python -m kzai_guard.demo`` walks through the law in order and the audit log verifies.

The walkthrough shows the signed-in person, and a forged ``X-Subject-Id`` header turned away.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DECISION = re.compile(r"^   -> POST /loans/[^/]+/decision: (\d{3})$", re.MULTILINE)
STEP = re.compile(r"^(\d)\. ", re.MULTILINE)
SIGNED_IN = re.compile(
    r'^   -> GET /me: 200\n      \{\n        "person": "KZ-880101300123"\n      \}$', re.MULTILINE
)
FORGED = re.compile(r"^   -> (\w+ \S+): 401$", re.MULTILINE)
EXPLAINED = re.compile(
    r"^   -> POST /loans/[^/]+/decision: 200\n"
    r"      ai-disclosure: mode=machine-generated, model=[^\n]+\n"
    r"      ai-decision-id: (\S+)\n"
    r"      link: </ai-decisions/\1/explanation>; rel=\"explanation\"\n",
    re.MULTILINE,
)


def test_the_demo_blocks_allows_routes_and_blocks_again_then_verifies_its_log(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kzai_guard.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout

    assert done.returncode == 0, done.stderr
    assert STEP.findall(output) == ["1", "2", "3", "4", "5", "6", "7", "8", "9"]
    assert DECISION.findall(output) == ["401", "403", "200", "202", "403"]
    assert SIGNED_IN.search(output)
    assert FORGED.findall(output) == [
        "POST /consents/KZ-880101300123/credit-scoring",
        "POST /loans/KZ-880101300123/decision",
        "DELETE /ai-decisions/objections",
    ]
    assert EXPLAINED.search(output)
    # the data behind the decision: what was submitted shown, the model's score withheld
    assert re.search(r"^      -> GET /ai-decisions/[0-9a-f-]+/data: 200$", output, re.MULTILINE)
    assert '"value": 600000' in output
    assert '"reason": "The scoring model\'s output is the bank\'s trade secret."' in output
    assert output.count('"type": "urn:kzai-guard:problem:no-legal-basis"') == 2
    assert '"type": "urn:kzai-guard:problem:human-review"' in output
    assert re.search(r"^      -> POST /ai-reviews/tickets/[^/]+/claim: 200$", output, re.MULTILINE)
    assert '"outcome_reason": "Income and debts checked against the documents."' in output
    assert re.search(r"^   witness \S+ at http://\S+: size \d+ cosigned$", output, re.MULTILINE)
    assert re.search(
        r"^OK: \d+ records .*; size \d+ cosigned by witness.demo.invalid/w1$", output, re.MULTILINE
    )
    assert (tmp_path / "kzai-demo" / "kzai-audit").is_dir()
    report = (tmp_path / "kzai-demo" / "compliance-report.html").read_text(encoding="utf-8")
    assert 'data-count="decisions">4<' in report and "Verified: chain and signatures hold" in report
    # The witness that cosigned in step 7, checked with its key, as far as the log then went.
    assert re.search(
        r'<td>witness.demo.invalid/w1</td><td class="n" data-count="witness/witness.demo.invalid/'
        r'w1/size">\d+</td><td>[^<]+</td><td class="n" data-count="witness/witness.demo.invalid/'
        r'w1/behind">0</td><td>✓</td>',
        report,
    )
    assert re.search(r'data-count="witness_quorum_size">\d+<', report)
