"""`vidloom train-watermark-detector`: synthesise overlay data, train a small YOLO, export it.

No watermark detector weights exist to download, so this job makes them: it writes a YOLO
dataset of real photographs (and frames of any `--video`) with synthetic text/logo overlays,
trains a one-class YOLO built from its YAML (no pretrained weights), validates it on held-out
synthetic overlays and exports the weights: ``watermark_yolo.pt`` (the checkpoint, for `--init`)
and ``watermark_yolo.onnx`` (what the curation stage runs; `curation.watermark.weights`).
Everything runs offline. Re-running the same command resumes: the dataset is reused and training
continues from ``train/weights/last.pt``. ``--export-onnx FILE.pt`` only converts a checkpoint.

On CPU a from-scratch epoch costs ~0.15-0.2 s per 320-px image; a useful detector needs a GPU
(`--device 0`, minutes) or hours of background CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from vidloom.pipelines.curation.watermark.synthetic import write_yolo_dataset
from vidloom.pipelines.curation.watermark.yolo import export_onnx, offline_ultralytics
from vidloom.platform.weights import file_digest

ARCHITECTURES = ("yolo11n", "yolov8n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidloom train-watermark-detector",
        description="Train the watermark/logo detector on synthetic overlays (offline).",
    )
    p.add_argument("--out", default="runs/watermark", help="output folder (dataset, run, weights, metrics)")
    p.add_argument("--images", type=int, default=2000, help="synthetic images in all (train + val)")
    p.add_argument("--val-share", type=float, default=0.2, help="share of images held out for validation")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--imgsz", type=int, default=320, help="image long side and training size, px")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu", help="cpu, or a CUDA index such as 0")
    p.add_argument("--model", choices=ARCHITECTURES, default="yolo11n", help="architecture YAML (no pretrained weights)")
    p.add_argument("--video", action="append", default=[], help="video whose frames are also used as backgrounds (repeatable)")
    p.add_argument("--photos", action="append", default=[],
                   help="folder of photographs (jpg/png, searched recursively) also used as backgrounds (repeatable)")
    p.add_argument("--fonts", action="append", default=[],
                   help="folder of TrueType fonts (.ttf, searched recursively) the overlays' text is also drawn "
                   "with, beside matplotlib's (repeatable; e.g. /usr/share/fonts/truetype). The machine's fonts "
                   "are not used unless named: the same command makes the same images on every machine")
    p.add_argument("--init", default=None,
                   help="start from these weights (.pt of an earlier run, e.g. the committed detector) instead of "
                   "from scratch; the architecture is the file's")
    p.add_argument("--lr0", type=float, default=None,
                   help="initial learning rate with AdamW (default: Ultralytics' choice for the run's length); "
                   "for fine-tuning with --init, e.g. 0.0005")
    p.add_argument("--warmup-epochs", type=float, default=3.0,
                   help="epochs of learning-rate warm-up (Ultralytics' default 3; 0 suits fine-tuning with --init)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=0, help="dataloader worker processes")
    p.add_argument("--hours", type=float, default=None,
                   help="wall-clock budget of training in hours (overrides --epochs; the schedule fits the budget)")
    p.add_argument("--patience", type=int, default=100, help="stop after this many epochs without improvement")
    p.add_argument("--fresh", action="store_true", help="start training over instead of resuming from last.pt")
    p.add_argument("--export-onnx", metavar="FILE.pt", default=None,
                   help="only write FILE.onnx next to this Ultralytics checkpoint (a pickle: one you made or trust) "
                   "and exit; --imgsz is the size it is checked at")
    return p


def _finished(last: Path) -> bool:
    """Whether the run behind `last.pt` completed (Ultralytics marks a final checkpoint epoch -1)."""
    import torch

    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    return int(ckpt.get("epoch", -1)) < 0


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run the job; returns the metrics written to ``OUT/metrics.json``."""
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    offline_ultralytics()
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data_yaml = write_yolo_dataset(out / "dataset", images=args.images, imgsz=args.imgsz,
                                   val_share=args.val_share, seed=args.seed, videos=args.video,
                                   photos=args.photos, fonts=args.fonts)
    dataset_s = time.perf_counter() - t0
    run_dir = out / "train"
    last, best = run_dir / "weights" / "last.pt", run_dir / "weights" / "best.pt"
    common = dict(plots=False, amp=False, verbose=False)
    t1 = time.perf_counter()
    if last.is_file() and not args.fresh and _finished(last):
        print(f"training in {run_dir} already finished; validating its best weights")
    elif last.is_file() and not args.fresh:
        print(f"resuming {last}")
        YOLO(str(last)).train(resume=True, device=args.device, workers=args.workers, **common)
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        if args.init:
            if not Path(args.init).is_file():
                raise FileNotFoundError(f"--init weights not found: {args.init}")
            model = YOLO(str(args.init), task="detect")
        else:
            model = YOLO(f"{args.model}.yaml", task="detect")
        model.train(
            data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
            device=args.device, workers=args.workers, project=str(out), name="train",
            exist_ok=True, pretrained=bool(args.init), seed=args.seed, deterministic=True,
            patience=args.patience, cache=False, warmup_epochs=args.warmup_epochs,
            **({"optimizer": "AdamW", "lr0": args.lr0} if args.lr0 else {}),
            **({"time": args.hours} if args.hours else {}), **common,
        )
    train_s = time.perf_counter() - t1
    weights = best if best.is_file() else last
    exported = out / "watermark_yolo.pt"
    shutil.copyfile(weights, exported)
    model = YOLO(str(exported), task="detect")
    val = model.val(data=str(data_yaml), imgsz=args.imgsz, batch=args.batch, device=args.device,
                    split="val", workers=args.workers, project=str(out), name="val", exist_ok=True, **common)
    box = val.box
    onnx_path = export_onnx(exported, args.imgsz)
    metrics = {
        "precision": round(float(box.mp), 4),
        "recall": round(float(box.mr), 4),
        "map50": round(float(box.map50), 4),
        "map50_95": round(float(box.map), 4),
        "weights": str(exported),
        "weights_sha256_12": file_digest(exported),
        "onnx": str(onnx_path),
        "onnx_sha256_12": file_digest(onnx_path),
        "config": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "init_sha256_12": file_digest(args.init) if args.init else None,
        "dataset": json.loads((out / "dataset" / "dataset.json").read_text()),
        "seconds": {"dataset": round(dataset_s, 1), "train": round(train_s, 1)},
        "torch": torch.__version__,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints validation precision/recall and where the weights are."""
    args = build_parser().parse_args(argv)
    if args.export_onnx:
        if not Path(args.export_onnx).is_file():
            print(f"--export-onnx: no such file: {args.export_onnx}", file=sys.stderr)
            return 2
        path = export_onnx(args.export_onnx, args.imgsz)
        print(f"wrote {path} (sha256 {file_digest(path)}); set curation.watermark.weights to it")
        return 0
    if args.images < 2:
        print("--images must be at least 2 (one for validation)", file=sys.stderr)
        return 2
    if args.lr0 is not None and not 0 < args.lr0 <= 0.1:
        print(f"--lr0 must be in (0, 0.1], got {args.lr0}", file=sys.stderr)
        return 2
    if args.warmup_epochs < 0:
        print(f"--warmup-epochs must be >= 0, got {args.warmup_epochs}", file=sys.stderr)
        return 2
    m = train(args)
    print(
        f"watermark detector: precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
        f"mAP50 {m['map50']:.3f} on {m['dataset']['val']} held-out synthetic images\n"
        f"  checkpoint {m['weights']} (sha256 {m['weights_sha256_12']})\n"
        f"  curation.watermark.weights: {m['onnx']} (sha256 {m['onnx_sha256_12']})\n"
        f"  metrics {Path(args.out).resolve() / 'metrics.json'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
