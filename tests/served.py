"""A project folder whose ``fake`` profiles reach a :class:`~workbench.testing.FakeServer` on 127.0.0.1: how the
CLI tests run ``workbench`` in a subprocess and then read what the fake received (``conftest.project``).

``fake`` is gpt-4o-mini (vision, structured outputs), ``fake-text`` is gpt-35-turbo (neither). The key is made up
at run time and shaped like no key pattern, so only its registration can mask it.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from workbench.testing import FakeBackend

KEY_ENV = "WB_SERVED_KEY"
KEY = "wbtest" + "Q7r2" * 6

CASES_CSV = "id,text,expected,image\nc1,I love it,positive,cat.png\nc2,Awful,negative,cat.png\n"

SPEC = """\
name: battery
dataset: cases.csv
targets: [fake]
variants:
  - name: plain
    user: "Review: {{ text }}"
"""

TOML = """\
[profiles.fake]
backend = "openai"
base_url = "{base_url}"
api_key_env = "{key_env}"
model = "gpt-4o-mini"

[profiles.fake-text]
backend = "openai"
base_url = "{base_url}"
api_key_env = "{key_env}"
model = "gpt-35-turbo"
"""


def png(w: int = 8, h: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), "white").save(buf, format="PNG")
    return buf.getvalue()


def huge_png(w: int = 20_000, h: int = 20_000) -> bytes:
    """A PNG whose header says ``w`` x ``h`` with almost no pixel data: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


@dataclass
class Project:
    root: Path
    backend: FakeBackend
    base_url: str
    run_cli: Any

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, "utf-8")
        return path

    def cli(self, *args: str, env: dict | None = None):
        """``workbench ARGS`` in the project folder, with the fake profiles' key in the environment."""
        env = {KEY_ENV: KEY, "WORKBENCH_REPORTS": str(self.root / "reports"), **(env or {})}
        return self.run_cli(*args, cwd=str(self.root), env=env)

    def setup(self) -> Project:
        self.write("workbench.toml", TOML.format(base_url=self.base_url, key_env=KEY_ENV))
        self.write("cases.csv", CASES_CSV)
        self.write("cat.png", png())
        self.write("spec.yaml", SPEC)
        return self
