"""``champ-guidance-train`` / ``python -m champ_guidance.train``: fit, then evaluate."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://champ_guidance.configs", "train")

if __name__ == "__main__":
    main()
