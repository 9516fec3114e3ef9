"""Console entry for the toy pipeline (used by sweep, DDP and resume integration tests)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from motioncore.train import hydra_entry

main = hydra_entry(str(Path(__file__).resolve().parent / "configs"), "toy")

if __name__ == "__main__":
    main()
