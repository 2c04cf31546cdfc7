"""Check that every table of the README and the boards fits GitHub's article width (no horizontal scroll).

GitHub renders Markdown into an article 1,012 px wide (a 1,280 px window), and gives a table
``display: block; width: max-content; max-width: 100%; overflow: auto``: a table whose narrowest
layout is wider than the article gets a scroll bar, and the columns on its right are off-screen.
This script renders each Markdown file with markdown-it (CommonMark + tables, as GitHub's GFM)
and the table rules of GitHub's stylesheet, lays it out in headless Chromium at 1,012 px and
fails, naming the file and table, when a table's content is wider than its box.

    python scripts/check_board_width.py [--screenshot DIR] [FILE.md ...]   (default: README.md, leaderboards/*.md)

Exit 0: every table fits; 1: one does not; 0 with a "skipped" line when Chromium or
markdown-it-py is not installed (``apt-get install -y chromium``; ``pip install markdown-it-py``).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH = 1012  # GitHub's article width at a 1,280 px window
# The rules of github-markdown-css that decide a table's width (font, padding, borders).
CSS = """
body { margin: 0; }
.markdown-body { box-sizing: border-box; width: %dpx; padding: 0; font-size: 16px; line-height: 1.5;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
.markdown-body code { font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, monospace;
  font-size: 85%%; padding: .2em .4em; }
.markdown-body img { max-width: 100%%; }
.markdown-body table { border-spacing: 0; border-collapse: collapse; display: block; width: max-content;
  max-width: 100%%; overflow: auto; margin-bottom: 16px; }
.markdown-body table th { font-weight: 600; }
.markdown-body table th, .markdown-body table td { padding: 6px 13px; border: 1px solid #d1d9e0; }
.markdown-body pre { overflow: auto; font-size: 85%%; padding: 16px; }
""" % WIDTH
# After layout: each table's overflow (content width - box width) into the page title, read back by --dump-dom.
SCRIPT = """
<script>
window.addEventListener('load', () => {
  const out = [...document.querySelectorAll('table')].map((t, i) => ({
    table: i + 1, first: (t.querySelector('th') || {}).textContent || '', over: t.scrollWidth - t.clientWidth,
  }));
  const pre = document.createElement('pre'); pre.id = 'width-report'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def render(md_text: str, base: str = "") -> str:
    """The page GitHub would show for ``md_text``; ``base``: the file's folder URI (images resolve)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(md_text)
    head = f"<base href='{html.escape(base)}'>" if base else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'>{head}<style>{CSS}</style></head>"
            f"<body><article class='markdown-body'>{body}</article>{SCRIPT}</body></html>")


def chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def measure(browser: str, page: Path) -> list[dict]:
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={WIDTH},2000",
                           "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="width-report">(.*?)</pre>', done.stdout, re.S)
    if not found:
        raise SystemExit(f"{page}: Chromium gave no layout report (exit {done.returncode}): {done.stderr[-300:]}")
    return json.loads(html.unescape(found.group(1)))


def screenshot(browser: str, page: Path, png: Path) -> None:
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={WIDTH},4000", f"--screenshot={png}", page.as_uri()],
                   capture_output=True, timeout=120, check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--screenshot", type=Path, help="also save a PNG of each rendered page into this folder")
    args = ap.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    files = args.files or [root / "README.md", *sorted((root / "leaderboards").glob("*.md"))]
    browser = chromium()
    try:
        import markdown_it  # noqa: F401
    except ImportError:
        browser = None
    if browser is None:
        print("skipped: the board width check needs chromium (apt-get install -y chromium) and markdown-it-py")
        return 0
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        for md in files:
            page = Path(tmp) / f"{md.resolve().parent.name}-{md.stem}.html"
            page.write_text(render(md.read_text(encoding="utf-8"), md.resolve().parent.as_uri() + "/"), encoding="utf-8")
            if args.screenshot:
                args.screenshot.mkdir(parents=True, exist_ok=True)
                screenshot(browser, page, args.screenshot / f"{md.resolve().parent.name}-{md.stem}.png")
            for t in measure(browser, page):
                if t["over"] > 0:
                    bad.append(f"{md}: table {t['table']} (first column {t['first']!r}) is {t['over']} px wider "
                               f"than GitHub's {WIDTH} px article: it would scroll sideways")
    for line in bad:
        print(line, file=sys.stderr)
    if not bad:
        print(f"{len(files)} file(s): every table fits {WIDTH} px")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
