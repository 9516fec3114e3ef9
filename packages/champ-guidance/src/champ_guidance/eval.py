"""``champ-guidance-eval`` / ``python -m champ_guidance.eval``: metrics.json for ``ckpt_path``."""

from champ_guidance.train import check_guidance_channels
from motioncore.train import hydra_entry

main = hydra_entry("pkg://champ_guidance.configs", "eval", validate=check_guidance_channels)

if __name__ == "__main__":
    main()
