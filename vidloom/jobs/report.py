"""`vidloom report DIR`: write DIR/report/index.html, a self-contained page about a curated
folder (inputs, tier funnel, signal histograms, kept and dropped clips, near-duplicates,
clusters, captions, camera motion). Run it after `vidloom curate`, and again after
`vidloom export` to see the tiers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidloom report", description=__doc__.split("\n")[0].strip("`"))
    p.add_argument("dir", help="a folder written by `vidloom curate --out DIR`")
    p.add_argument("--out", help="where to write the page (default: DIR/report/index.html)")
    p.add_argument("--examples", type=int, default=6, help="thumbnails per kept/drop reason (default 6)")
    p.add_argument("--captions", type=int, default=10, help="caption samples in the table (default 10)")
    p.add_argument("--check", action="store_true",
                   help="open the page in headless Chromium: screenshot beside it, fail on console errors")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vidloom.pipelines.report import build_report

    try:
        path = build_report(args.dir, args.out, examples_per_group=max(0, args.examples),
                            caption_samples=max(0, args.captions))
    except FileNotFoundError as exc:
        print(f"vidloom report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if args.check:
        from vidloom.pipelines.report.browser import BrowserError, open_in_chromium

        png = Path(path).with_suffix(".png")
        try:
            result = open_in_chromium(path, png)
        except BrowserError as exc:
            print(f"vidloom report: {exc}", file=sys.stderr)
            return 2
        print(f"screenshot {png} ({result.page_height} px tall page)")
        for line in result.problems():
            print(f"  problem: {line}", file=sys.stderr)
        return 1 if result.problems() else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
