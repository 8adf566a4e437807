"""`vidloom samples OUT`: render the sample corpus (videos + truth.json) into OUT."""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    """Render the corpus; print a one-line summary. Returns a process exit code."""
    parser = argparse.ArgumentParser(
        prog="vidloom samples",
        description="Render the sample video corpus with its ground truth (OUT/truth.json).",
    )
    parser.add_argument("out", metavar="OUT", help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--force", action="store_true",
                        help="re-render even if OUT already holds a complete corpus for this seed")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    # Imported here so `--help` stays fast (PyAV/OpenCV/scikit-image imports are not free).
    from vidloom.pipelines.samples.render import render_sample_corpus

    t0 = time.perf_counter()
    truth = render_sample_corpus(args.out, seed=args.seed, force=args.force)
    dt = time.perf_counter() - t0
    videos = truth["videos"]
    frames = sum(v["num_frames"] or 0 for v in videos)
    by_status: dict[str, int] = {}
    for v in videos:
        by_status[v["expected_status"]] = by_status.get(v["expected_status"], 0) + 1
    status = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    print(f"vidloom samples: {len(videos)} files ({status}), {frames} frames "
          f"in {args.out} (seed {args.seed}, {dt:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
