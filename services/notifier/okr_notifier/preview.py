"""Render the executive readout for a built-in sample portfolio and screenshot it: `python -m okr_notifier.preview OUT_DIR`.

Writes `readout.html`, `readout.txt` and `readout.png` (headless Chromium, found by
`deploy/local/chromium.sh path`) into OUT_DIR, for people to look at the layout.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from okr_notifier.readout import ReadoutInput, render_readout

CHROMIUM_SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "local" / "chromium.sh"
WINDOW = "1024,1400"
SCREENSHOT_TIMEOUT = 120


def _card(
    objective_id: str, title: str, score: float, confidence: float | None, delta: float, driver: tuple[str, float] | None
) -> dict[str, Any]:
    arrow, word = ("↑", "up") if delta >= 0.005 else ("↓", "down") if delta <= -0.005 else ("→", "flat")
    return {
        "objective_id": objective_id,
        "title": title,
        "cycle_id": "2026-Q1",
        "status": "active",
        "score": score,
        "confidence": confidence,
        "trend": {"arrow": arrow, "label": f"{word} {abs(delta):.2f}", "delta": delta, "from": score - delta, "window_days": 30},
        "driver": {"product_id": driver[0], "movement": driver[1]} if driver else None,
        "mixed_methods": objective_id == "obj-mobile",
        "as_of": "2026-03-31T17:00:00+00:00",
    }


def _node(
    node_id: str, title: str, product: str, owner: str, confidence: float, rules: dict[str, str], plan: dict[str, str] | None
) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "node_kind": "key_result",
        "title": title,
        "product_id": product,
        "owner": owner,
        "confidence": confidence,
        "recovery_plan": {"at": "2026-03-24T10:00:00+00:00", **plan} if plan else None,
        "alerts": [
            {"alert_id": f"acme:{rule}:{node_id}:1", "rule": rule, "severity": severity, "state": "raised", "summary": "", "asked": ""}
            for rule, severity in rules.items()
        ],
    }


SCORECARD: dict[str, Any] = {
    "portfolio_id": "acme",
    "as_of": "2026-03-31T17:00:00+00:00",
    "window_days": 30,
    "objectives": [
        _card("obj-revenue", "Grow self-serve revenue", 0.625, 0.71, 0.08, ("payments", 0.052)),
        _card("obj-checkout", "Make checkout effortless for first-time buyers", 0.41, 0.38, -0.06, ("checkout", -0.045)),
        _card("obj-mobile", "Win mobile-first customers", 0.55, 0.6, 0.002, None),
        _card("obj-cost", "Cut the cost to serve a merchant by 20%", 0.73, 0.82, 0.12, ("mobile", 0.07)),
    ],
}

EXCEPTIONS: dict[str, Any] = {
    "portfolio_id": "acme",
    "as_of": "2026-03-31T17:00:00+00:00",
    "minimum_severity": "warning",
    "products": [
        {
            "product_id": "checkout",
            "nodes": [
                _node(
                    "kr-conv",
                    "Checkout conversion from 3.1% to 4.0%",
                    "checkout",
                    "priya.nair",
                    0.22,
                    {"plan_overdue": "critical", "off_track": "warning"},
                    None,
                ),
                _node(
                    "kr-guest",
                    "Guest checkout used in 25% of first orders",
                    "checkout",
                    "tom.weber",
                    0.4,
                    {"off_track": "warning", "confidence_falling": "warning"},
                    {
                        "owner": "tom.weber",
                        "option": "change_tactic",
                        "decision_needed": "Agree to drop the loyalty sign-up step from guest checkout",
                    },
                ),
            ],
        },
        {
            "product_id": "mobile",
            "nodes": [
                _node(
                    "kr-crash",
                    "Android crash-free sessions at 99.5% or better",
                    "mobile",
                    "sam.ortiz",
                    0.35,
                    {"off_track": "warning"},
                    {"owner": "sam.ortiz", "option": "change_target", "decision_needed": "Accept a re-forecast to 99.2% this quarter"},
                ),
            ],
        },
        {
            "product_id": "payments",
            "nodes": [
                _node(
                    "kr-auth",
                    "Card authorisation rate at 97% or better",
                    "payments",
                    "dana.lee",
                    0.31,
                    {"off_track": "critical"},
                    {
                        "owner": "dana.lee",
                        "option": "change_resources",
                        "decision_needed": "Move two engineers from Payouts to Payments for six weeks",
                    },
                ),
            ],
        },
    ],
}

REALLOCATIONS = [
    "Payments asks for two engineers from Payouts for six weeks to recover the card authorisation rate (decision: CPO, by 10 April).",
    "Mobile asks to move the Q2 tablet work to Q3 and spend the time on Android stability.",
]

QUESTIONS = [
    "Is first-time-buyer conversion still the right bet for checkout, or should Q2 focus on returning buyers?",
    "Do we fund a dedicated reliability team across mobile and payments next half?",
    "Should self-serve revenue targets move up now that pricing changes are ahead of plan?",
]


def sample() -> ReadoutInput:
    """The built-in sample: 4 objectives across 3 products, mixed trends, 4 exceptions (one without a recovery plan)."""
    return ReadoutInput.from_apis("Acme Commerce", "March 2026", SCORECARD, EXCEPTIONS, REALLOCATIONS, QUESTIONS)


def chromium_binary() -> str:
    """The headless browser's path, as `deploy/local/chromium.sh path` finds it."""
    found = subprocess.run(["bash", str(CHROMIUM_SCRIPT), "path"], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise SystemExit(f"no Chromium found: {found.stderr.strip()} (run: bash deploy/local/chromium.sh ensure)")
    return found.stdout.strip()


def screenshot(html: Path, png: Path) -> None:
    """Screenshot `html` into `png` with headless Chromium; fail unless a non-empty PNG was written."""
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="okr-chromium-") as profile:
        command = [
            chromium_binary(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={WINDOW}",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            html.resolve().as_uri(),
        ]
        ran = subprocess.run(command, capture_output=True, text=True, timeout=SCREENSHOT_TIMEOUT, check=False)
    if ran.returncode != 0 or not png.is_file() or png.stat().st_size == 0:
        raise SystemExit(f"Chromium did not write {png} (exit {ran.returncode}):\n{ran.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> None:
    """Write the sample readout (HTML, text) and its screenshot into OUT_DIR and print the paths."""
    parser = argparse.ArgumentParser(prog="python -m okr_notifier.preview", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="where readout.html, readout.txt and readout.png go")
    out: Path = parser.parse_args(argv).out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    content = render_readout(sample())
    html, text, png = out / "readout.html", out / "readout.txt", out / "readout.png"
    html.write_text(content.html, encoding="utf-8")
    text.write_text(content.text, encoding="utf-8")
    screenshot(html, png)
    for path in (html, text, png):
        print(f"{path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
