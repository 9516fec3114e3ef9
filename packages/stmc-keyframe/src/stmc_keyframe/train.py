"""``stmc-keyframe-train``: fit (and by default evaluate) with Hydra overrides."""

from motioncore.train import hydra_entry

main = hydra_entry("pkg://stmc_keyframe.configs", "train")

if __name__ == "__main__":
    main()
