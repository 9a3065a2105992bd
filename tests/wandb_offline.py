"""Read back an offline W&B run file (``run-<id>.wandb``) without the network.

wandb >= 0.18 writes its records from a Go core and no longer ships a Python
reader, so tests read the file format directly: a 7-byte header, then
LevelDB-style 32 KiB blocks of chunks (CRC, length, kind; kinds 1 full,
2 first, 3 middle, 4 last), each record a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7  # b":W&B" + magic 0xBEE1 + version
CHUNK_HEADER = 7  # crc32 (4) + length (2) + kind (1)


def read_records(path: Path) -> list[Any]:
    """Every record of an offline run file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    raw: list[bytes] = []
    pending = b""
    pos = HEADER
    while pos + CHUNK_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        chunk = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == 1:
            raw.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            raw.append(pending + chunk)
            pending = b""
    records = []
    for item in raw:
        record = pb.Record()
        record.ParseFromString(item)
        records.append(record)
    return records


def history_keys(records: list[Any]) -> set[str]:
    """Every metric or media key logged to the run's history."""
    keys: set[str] = set()
    for record in records:
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                keys.add(item.key or "/".join(item.nested_key))
    return keys
