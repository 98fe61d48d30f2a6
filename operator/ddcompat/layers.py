"""Find the installed ddtrace in an image's layers by streaming tar headers — no extraction, no disk.

``site-packages/ddtrace-X.Y.Z.dist-info/`` names the tracer version; its ``WHEEL`` file's ``Tag:`` line
(``cp312-cp312-manylinux…``) names the CPython it was built for. Layers are read as they download: gzip is
inflated incrementally, only 512-byte headers are parsed, file bodies are skipped (except that one small
``WHEEL``), and the scan stops at the first match or at the byte budget.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Final

DIST_INFO: Final = re.compile(
    r"(?:^|/)site-packages/ddtrace-(\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)\.dist-info/(.*)$"
)
WHEEL_TAG: Final = re.compile(r"^Tag:\s*cp(\d)(\d+)-", re.MULTILINE)
BLOCK: Final = 512


@dataclass
class LayerFinding:
    ddtrace: str | None = None
    python: str | None = None  # "3.12" from the WHEEL tag
    path: str = ""


class TarHeaderScanner:
    """Feed it decompressed tar bytes in any chunk sizes; it records the ddtrace dist-info it sees."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.skip = 0  # bytes of file body still to skip
        self.capture: int | None = None  # bytes of a WHEEL file still to read
        self.captured = bytearray()
        self.long_name: str | None = None
        self.reading_long_name = 0
        self.found = LayerFinding()
        self.done = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while not self.done:
            if self.skip:
                take = min(self.skip, len(self.buffer))
                if self.capture is not None or self.reading_long_name:
                    self.captured += self.buffer[:take]
                del self.buffer[:take]
                self.skip -= take
                if self.skip:
                    return
                if self.capture is not None:
                    self._wheel(bytes(self.captured[: self.capture]))
                    self.capture = None
                if self.reading_long_name:
                    self.long_name = (
                        bytes(self.captured[: self.reading_long_name])
                        .split(b"\0")[0]
                        .decode("utf-8", "replace")
                    )
                    self.reading_long_name = 0
                continue
            if len(self.buffer) < BLOCK:
                return
            header = bytes(self.buffer[:BLOCK])
            del self.buffer[:BLOCK]
            if header == b"\0" * BLOCK:
                continue
            name = header[:100].split(b"\0")[0].decode("utf-8", "replace")
            prefix = (
                header[345:500].split(b"\0")[0].decode("utf-8", "replace")
                if header[257:262] == b"ustar"
                else ""
            )
            if prefix:
                name = f"{prefix}/{name}"
            if self.long_name is not None:
                name, self.long_name = self.long_name, None
            try:
                size = int(header[124:136].split(b"\0")[0].strip() or b"0", 8)
            except ValueError:
                self.done = True  # not a tar stream we understand
                return
            kind = header[156:157]
            padded = (size + BLOCK - 1) // BLOCK * BLOCK
            self.captured = bytearray()
            if kind == b"L":  # GNU long name: the next body is the name of the following entry
                self.reading_long_name = size
                self.capture = None
                self.captured = bytearray()
                self.skip = padded
                continue
            match = DIST_INFO.search(name.lstrip("./"))
            if match:
                self.found.ddtrace = self.found.ddtrace or match.group(1)
                self.found.path = self.found.path or name
                if match.group(2) == "WHEEL" and size < 64 * 1024:
                    self.capture = size
            self.skip = padded
            if self.found.ddtrace and self.found.python:
                self.done = True

    def _wheel(self, text: bytes) -> None:
        tag = WHEEL_TAG.search(text.decode("utf-8", "replace"))
        if tag:
            self.found.python = f"{tag.group(1)}.{tag.group(2)}"
            if self.found.ddtrace:
                self.done = True


class LayerStream:
    """Gzip (or plain tar) bytes in, tar headers scanned; `budget` caps the compressed bytes read."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.read = 0
        self.scanner = TarHeaderScanner()
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._gzip: bool | None = None

    def feed(self, chunk: bytes) -> bool:
        """False when the scan is over (found, or not a tar we can read)."""
        self.read += len(chunk)
        if self._gzip is None:
            self._gzip = chunk[:2] == b"\x1f\x8b"
        try:
            data = self._inflate.decompress(chunk) if self._gzip else chunk
        except zlib.error:
            return False
        self.scanner.feed(data)
        return not self.scanner.done
