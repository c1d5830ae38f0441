"""Download and checksum every dataset file the paper profile needs (``make data``), or verify a folder offline.

Usage::

    python3 tools/fetch_data.py                    # into $LMCNB_DATA_DIR (default ~/.cache/lmcnb/data)
    python3 tools/fetch_data.py --dir /stage/data  # into another folder (then copy it to the offline machine)
    python3 tools/fetch_data.py --check            # verify sizes, MD5 and SHA-256 only; no network
    python3 tools/fetch_data.py --dataset mnist    # one dataset (repeatable; default: all of the paper profile)

Files land in torchvision's layout (``MNIST/raw/*.gz``, ``cifar-10-python.tar.gz``), are verified against the
sizes, MD5 and SHA-256 digests stored in ``lmcnb/_data_files.py`` while they download, and are written atomically
(a temporary file renamed only once verified). Files already there with the right checksums are not downloaded
again. Standard library only: it runs with any Python 3 on the machine that stages the data, before or without
the virtual environment. Exit status: 0 when every file is right, 1 otherwise (each problem on stderr).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmcnb import _data_files as files  # noqa: E402  (standard library only, like this script)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None,
                        help=f"data root (default ${files.DATA_DIR_ENV}, else {files.DEFAULT_DATA_DIR})")
    parser.add_argument("--check", action="store_true", help="only verify the files already there (offline)")
    parser.add_argument("--dataset", action="append", choices=sorted(files.FILES), default=None,
                        help="a dataset to fetch or check (repeatable; default: every one of the paper profile)")
    args = parser.parse_args(argv)
    datasets = tuple(args.dataset) if args.dataset else files.PAPER_DATASETS
    root = files.data_dir() if args.dir is None else args.dir.expanduser().absolute()
    if args.check:
        problems = files.check(datasets, root)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print(f"{len(problems)} problem(s) in {root}: run `make data LMCNB_DATA_DIR={root}` (or "
                  f"`python3 tools/fetch_data.py --dir {root}`) on a machine with internet, then copy the "
                  "folder here.", file=sys.stderr)
            return 1
        print(f"ok: every file of {', '.join(datasets)} in {root} has its stored size, MD5 and SHA-256")
        return 0
    try:
        files.fetch(datasets, root, log=print)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"done: {root} holds {', '.join(datasets)}, checksums verified. To stage an offline machine, copy this "
          f"folder there and point ${files.DATA_DIR_ENV} at it (or copy it to its default {files.DEFAULT_DATA_DIR}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
