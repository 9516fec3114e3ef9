"""``champ-guidance-eval`` / ``python -m champ_guidance.eval``: metrics.json for ``ckpt_path``."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://champ_guidance.configs", "eval")

if __name__ == "__main__":
    main()
