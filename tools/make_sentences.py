#!/usr/bin/env python3
"""Writes the English sentences the sentence-encoder tests embed (tests/data/sentences.txt).

  python3 tools/make_sentences.py tests/data/sentences.txt

The sentences are cut from licence texts, which may be copied verbatim: first the licences Debian
ships in /usr/share/common-licenses (GNU GPL 2 and 3, LGPL 2.1 and 3, FDL 1.3, Apache 2.0, MPL 2.0,
Artistic, CC0 1.0), then the licence paragraphs of Debian's per-package copyright files
(/usr/share/doc/*/copyright: BSD, MIT / Expat, zlib, PSF, ... licences; lines naming copyright
holders, e-mail addresses, years or files are left out). Each line of the output is one sentence of
30 to 300 ASCII characters (English; the Italian and German licences drop out) and at least five
words, left out when it shares half its words with an earlier one (licences repeat their
clauses with other names in them), at most --count of them. The committed file is the data; running this on another machine's packages gives another selection.
"""
import argparse
import glob
import os
import re

COMMON_LICENSES = ["GPL-3", "GPL-2", "LGPL-3", "LGPL-2.1", "GFDL-1.3", "Apache-2.0", "MPL-2.0", "Artistic", "CC0-1.0"]
# Two sentences sharing this fraction of their words (Jaccard) are one sentence.
NEAR_DUPLICATE = 0.5
NOT_LICENCE_TEXT = re.compile(r"@|[Cc]opyright|\([Cc]\)|\.\.\.|\d{4}|\bFiles\b|/|--|__|==")


def sentences(text):
    text = re.sub(r"\n ?\.\n", "\n\n", text)  # a copyright file's empty line is " ."
    text = re.sub(r"\s+", " ", text)
    # A sentence ends at . ! ? or ; followed by a space and a capital letter, a digit or a quote.
    for piece in re.split(r'(?<=[.!?;])\s+(?=["(A-Z0-9])', text):
        piece = piece.strip(" -_=*")
        piece = re.sub(r"^(\(?[0-9a-z]{1,3}[.)]\s*)+", "", piece)  # list numbering: "2.", "a)", "(b)"
        if (30 <= len(piece) <= 300 and len(piece.split()) >= 5 and piece[0].isupper()
                and piece[-1] in ".;!?" and not piece.endswith(" .") and piece.isascii() and not re.search(r"https?:|[<>]{2}", piece)):
            yield piece


def copyright_file_text(path):
    with open(path, encoding="utf-8", errors="strict") as f:
        lines = f.read().splitlines()
    return "\n".join(l for l in lines if not re.match(r"^[A-Z][A-Za-z-]+:", l))  # DEP-5 fields


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=1200)
    args = parser.parse_args()
    texts = []
    for name in COMMON_LICENSES:
        with open(os.path.join("/usr/share/common-licenses", name), encoding="utf-8") as f:
            texts.append((f.read(), False))
    for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
        try:
            texts.append((copyright_file_text(path), True))
        except (UnicodeDecodeError, OSError):
            continue
    lines, word_sets = [], []
    for text, filtered in texts:
        for s in sentences(text):
            if filtered and NOT_LICENCE_TEXT.search(s):
                continue
            words = set(re.findall(r"[a-z]+", s.lower()))
            if any(len(words & w) >= NEAR_DUPLICATE * len(words | w) for w in word_sets):
                continue  # the same clause with another name in it: its nearest neighbour would be a tie
            word_sets.append(words)
            lines.append(s)
        if len(lines) >= args.count:
            break
    lines = lines[:args.count]
    with open(args.out + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(args.out + ".tmp", args.out)
    print(f"{len(lines)} sentences -> {args.out}")


if __name__ == "__main__":
    main()
