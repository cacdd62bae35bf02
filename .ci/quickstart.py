"""Print the README's quickstart commands, one per line (the shell blocks under "## Quickstart")."""

from __future__ import annotations

import re
import sys
from pathlib import Path

text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text(encoding="utf-8")
section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
commands = [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]
if len(commands) != 2 or any("\n" in c for c in commands):
    sys.exit(f"README's quickstart must hold exactly two one-line commands, found {commands!r}")
print("\n".join(commands))
