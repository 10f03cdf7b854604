#!/usr/bin/env python3
"""Why challenge ids start with the time (otpd/src/code.rs): what one SQLite checkpoint has to
copy after 2,000 logins' inserts into a codes table that already holds 200,000 rows, with
random ids against time-ordered ids (the same 128 random bits behind a 12-hex-digit time).

Each insert is its own transaction in WAL mode, as otpd's are. The script counts the distinct
pages in the WAL (what a checkpoint writes into the database) and times the checkpoint.
Run: python3 bench/checkpoint_locality.py  (Python's own sqlite3, about 10 s)."""

import os
import secrets
import sqlite3
import struct
import tempfile
import time

EXISTING_ROWS = 200_000
NEW_ROWS = 2_000
PAGE = 4096
FRAME_HEADER = 24
WAL_HEADER = 32


def challenge_ids(time_ordered):
    millis = 1_700_000_000_000
    while True:
        millis += 1
        prefix = f"{millis:012x}" if time_ordered else ""
        yield prefix + secrets.token_hex(16)


def distinct_wal_pages(wal_path):
    """Page numbers of every frame in the WAL file, as a set."""
    data = open(wal_path, "rb").read()
    pages, offset = set(), WAL_HEADER
    while offset + FRAME_HEADER <= len(data):
        pages.add(struct.unpack(">I", data[offset : offset + 4])[0])
        offset += FRAME_HEADER + PAGE
    return pages


def measure(time_ordered, directory):
    path = os.path.join(directory, f"codes-{time_ordered}.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size={PAGE}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE codes (challenge TEXT PRIMARY KEY NOT NULL, user TEXT, mac BLOB)")
    ids = challenge_ids(time_ordered)
    row = lambda i: (next(ids), f"user{i % 1000}", secrets.token_bytes(32))
    db.execute("BEGIN")
    for i in range(EXISTING_ROWS):
        db.execute("INSERT INTO codes VALUES (?, ?, ?)", row(i))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(NEW_ROWS):
        db.execute("BEGIN")
        db.execute("INSERT INTO codes VALUES (?, ?, ?)", row(i))
        db.execute("COMMIT")
    pages = len(distinct_wal_pages(path + "-wal"))
    started = time.perf_counter()
    _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    elapsed = time.perf_counter() - started
    kind = "time-ordered" if time_ordered else "random"
    print(
        f"{kind:>12} ids: {NEW_ROWS} inserts wrote {frames} WAL frames of {pages} distinct "
        f"pages; the checkpoint took {elapsed * 1000:.1f} ms"
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        measure(False, directory)
        measure(True, directory)
