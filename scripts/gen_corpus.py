#!/usr/bin/env python3
"""gen_corpus.py: write a plaintext corpus for reprotect demos and benchmarks.

  gen_corpus.py DIR --count N [--min-size B] [--max-size B] [--dist uniform|log]
                [--fanout F] [--seed S] [--compressible FRACTION]

Files are spread over nested folders (F entries per folder level), with
sizes drawn uniformly or log-uniformly between min and max. A fraction of
the files is compressible text (for --compress runs); the rest is random.
Protect them afterwards with `reprotect protect` (the key mix is chosen by
which key is active when each part is protected).
"""
import argparse
import math
import os
import random
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--min-size", type=int, default=4096)
    ap.add_argument("--max-size", type=int, default=65536)
    ap.add_argument("--dist", choices=["uniform", "log"], default="uniform")
    ap.add_argument("--fanout", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compressible", type=float, default=0.0)
    a = ap.parse_args()
    if a.count < 0 or a.min_size < 0 or a.max_size < a.min_size or a.fanout < 1:
        sys.exit("gen_corpus.py: bad arguments")
    rnd = random.Random(a.seed)
    text = (b"The quick brown fox jumps over the lazy dog. " * 2000)
    total = 0
    for i in range(a.count):
        if a.dist == "log" and a.min_size > 0:
            size = int(math.exp(rnd.uniform(math.log(a.min_size),
                                             math.log(a.max_size + 1))))
        else:
            size = rnd.randint(a.min_size, a.max_size)
        sub = os.path.join(a.dir, "d%03d" % (i // a.fanout // a.fanout),
                           "d%03d" % (i // a.fanout % a.fanout))
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, "doc-%07d.bin" % i), "wb") as f:
            if rnd.random() < a.compressible:
                while size > 0:
                    chunk = text[:size]
                    f.write(chunk)
                    size -= len(chunk)
            else:
                f.write(os.urandom(size))
        total += size
    print("gen_corpus.py: %d files in %s" % (a.count, a.dir), file=sys.stderr)


if __name__ == "__main__":
    main()
