"""Disable torchaudio's compiled extension when it cannot load against the installed torch.

PyPI's torchaudio wheels ship `lib/*.so` built for one exact torch (and CUDA) release. Next to
another torch build, `import torchaudio` fails while loading them, although everything
descript-audiotools needs from torchaudio has a pure-Python path. torchaudio only loads the
extension when the files exist, so renaming them to `*.so.disabled` makes it fall back.
Idempotent; does nothing when torchaudio is absent or imports cleanly.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path


def imports_cleanly() -> bool:
    return subprocess.run([sys.executable, "-c", "import torchaudio"], capture_output=True).returncode == 0


def main() -> int:
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or imports_cleanly():
        return 0
    lib_dir = Path(spec.origin).parent / "lib"
    for library in sorted(lib_dir.glob("*.so")) + sorted(lib_dir.glob("*.pyd")):
        library.rename(library.with_name(library.name + ".disabled"))
        print(f"disabled torchaudio extension {library.name} (built for another torch)")
    if not imports_cleanly():
        print("torchaudio still fails to import; descript-audiotools will not be usable", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
